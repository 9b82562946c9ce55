"""Load benchmark of `modlab serve`: many concurrent clients against the real server, vs `modlab predict`.

    HF_HUB_OFFLINE=1 python benchmarks/serve_load.py [--run outputs/bench/inference-run] [--clients 200]

The model is the real all-MiniLM-L6-v2 + mean head trained by the harness on the Jigsaw sample (the run of
benchmarks/inference.py, trained there first when missing), exported as the default fp32 bundle. In one run:

1. `modlab predict` on the bundle over the benchmark's texts (a JSONL file): its rows/s is the baseline;
2. `modlab serve` on 127.0.0.1 in a subprocess, then `--clients` concurrent clients (one asyncio process,
   aiohttp), each sending `--requests` POST /v1/moderations of one Jigsaw text, one after the other, so the
   run stops by itself; requests/s, p50/p95/p99 latency and errors, with micro-batching on (the default) and
   off (`--no-batching`); throughput as a ratio of the baseline. The server and `modlab predict` get the
   same threads; on this 2-vCPU machine the clients share the CPU with the server, as they would on one box.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from inference import DEFAULT_DATA, DEFAULT_RUN, ensure_run  # noqa: E402

URL = re.compile(r"on http://127\.0\.0\.1:(\d+)/")


def bundle_of(run: Path) -> Path:
    from modlab.export import bundle
    from modlab.export.pipeline import export

    out = run / "bundle-fp32"
    if not bundle.is_bundle(out):
        out, parity = export(run, out=out)
        print(parity.line())
    return out


def texts_of(data: Path, count: int) -> list[str]:
    import pandas as pd

    texts = pd.read_csv(data / "train.csv", usecols=["comment_text"])["comment_text"].fillna("").tolist()
    return [texts[i % len(texts)] for i in range(count)]


def predict_rate(bundle: Path, texts: list[str], threads: int, work: Path) -> float:
    source, out = work / "texts.jsonl", work / "scores.csv"
    source.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    done = subprocess.run([sys.executable, "-m", "modlab", "predict", str(bundle), "--input", str(source),
                           "--output", str(out), "--threads", str(threads)], capture_output=True, text=True, check=True)
    line = done.stdout.strip().splitlines()[-1]
    print(f"modlab predict: {line}")
    return float(re.search(r"\(([\d,]+) rows/s", line).group(1).replace(",", ""))


class Server:
    def __init__(self, bundle: Path, threads: int, log: Path, *options: str) -> None:
        self.log = log
        argv = [sys.executable, "-m", "modlab", "serve", f"bench={bundle}", "--port", "0", "--threads", str(threads),
                *options]
        self.process = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
        deadline = time.monotonic() + 120
        while not (found := URL.search(log.read_text())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"modlab serve did not start:\n{log.read_text()}")
            time.sleep(0.2)
        self.url = f"http://127.0.0.1:{found.group(1)}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


async def load(url: str, texts: list[str], clients: int, requests: int) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        for _ in range(100):  # the server is up once /healthz answers
            try:
                async with session.get(url + "/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
        await session.post(url + "/v1/moderations", json={"input": texts[:8]})  # warm-up, not counted

        async def client(c: int) -> None:
            for k in range(requests):
                started = time.perf_counter()
                try:
                    async with session.post(url + "/v1/moderations", json={"input": texts[c * requests + k]}) as r:
                        body = await r.json()
                        if r.status != 200 or len(body.get("results", [])) != 1:
                            errors.append(f"{r.status} {str(body)[:120]}")
                except aiohttp.ClientError as err:
                    errors.append(type(err).__name__)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        elapsed = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return {"requests": len(ms), "seconds": elapsed, "rps": len(ms) / elapsed, "p50": statistics.median(ms),
            "p95": pick(0.95), "p99": pick(0.99), "errors": len(errors), "first_errors": errors[:3]}


def batch_sizes(url: str) -> str:
    import urllib.request

    text = urllib.request.urlopen(url + "/metrics").read().decode()
    value = {m.group(1): float(m.group(2)) for m in re.finditer(r'^modlab_batch_size_(sum|count)\{[^}]*\} (\S+)$',
                                                                  text, re.M)}
    return f"{value['sum'] / value['count']:.1f} texts per batch on average" if value.get("count") else "no batches"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs when --run has to be trained")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=10, help="requests per client")
    parser.add_argument("--threads", type=int, default=2, help="inference threads, server and predict alike")
    args = parser.parse_args()

    run = ensure_run(args.run.resolve(), args.data, args.epochs)
    bundle = bundle_of(run)
    texts = texts_of(args.data, args.clients * args.requests)
    print(f"# serve load: {len(texts)} Jigsaw texts, {args.clients} clients x {args.requests} requests, "
          f"{args.threads} threads; {platform.processor() or platform.machine()}, {os.cpu_count()} vCPUs")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        baseline = predict_rate(bundle, texts, args.threads, work)
        rows = []
        for label, options in (("micro-batching on", []), ("micro-batching off", ["--no-batching"])):
            server = Server(bundle, args.threads, work / "serve.log", *options)
            try:
                found = asyncio.run(load(server.url, texts, args.clients, args.requests))
                found["batches"] = batch_sizes(server.url)
            finally:
                server.stop()
            rows.append((label, found))
    print(f"\n{'server':<20} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} {'vs predict':>10}")
    print(f"{'modlab predict':<20} {baseline:>7.1f} {'':>8} {'':>8} {'':>8} {'':>6} {'1.00x':>10}")
    for label, r in rows:
        print(f"{label:<20} {r['rps']:>7.1f} {r['p50']:>8.0f} {r['p95']:>8.0f} {r['p99']:>8.0f} {r['errors']:>6} "
              f"{r['rps'] / baseline:>9.2f}x   ({r['requests']} requests in {r['seconds']:.1f} s; {r['batches']})")
        if r["first_errors"]:
            print(f"  first errors: {r['first_errors']}")
    on = rows[0][1]
    verdict = "PASS" if on["rps"] / baseline >= 0.7 and on["errors"] == 0 else "MISS"
    print(f"\ntarget: micro-batching >= 0.7x modlab predict with 0 errors: {on['rps'] / baseline:.2f}x, "
          f"{on['errors']} errors -> {verdict}")


if __name__ == "__main__":
    main()
