"""`modlab serve`: the real server in a subprocess on a free port, spoken to over HTTP as a client would.

Models: a bundle of a tiny random-init MiniLM (6 Jigsaw labels), the tiny run trained on the Jigsaw sample
(shared with test_export.py, served from its run dir through PyTorch) and a bundle of a tiny DistilBERT with
the 18 trust-and-safety categories (the page's any-taxonomy case).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from serving import Server
from test_export import LABELS, bare_checkpoint, cli_fails, needs_sample, trained_run

import modlab
from modlab.data.synthetic import TRUST_SAFETY_LABELS
from modlab.export.pipeline import export

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser test says why it skips
    expect = sync_playwright = None

LIMITS = ["--max-inputs", "16", "--max-chars", "2000", "--max-body-bytes", "20000"]
TEXTS = ["you are a wonderful person", "I will hurt you, idiot", "", "ünïcödé 😀 <b>bold</b>"]

pytestmark = needs_sample


@pytest.fixture(scope="module")
def jig_bundle(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("serve-jig")
    out, _ = export(bare_checkpoint(tmp / "jig.ckpt", "minilm", "mean", tmp / "cfg"), out=tmp / "jig")
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def server(jig_bundle, run_dir, tmp_path_factory):
    with Server([f"jig={jig_bundle}", f"run={run_dir}"], tmp_path_factory.mktemp("serve") / "serve.log",
                *LIMITS) as running:
        yield running


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split("{", 1)[1].split("}", 1)[0] == want:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_moderations_answer_in_the_moderation_shape_with_the_models_scores(server, jig_bundle, run_dir):
    one = server.post("/v1/moderations", {"input": TEXTS[1], "model": "jig"})
    assert one.status_code == 200, one.text
    body = one.json()
    assert set(body) == {"id", "model", "results"} and body["model"] == "jig" and body["id"].startswith("modr-")
    (result,) = body["results"]
    assert set(result) == {"flagged", "categories", "category_scores"}
    assert list(result["categories"]) == LABELS == list(result["category_scores"])

    many = server.post("/v1/moderations", {"input": TEXTS, "model": "jig"}).json()["results"]
    assert len(many) == len(TEXTS)  # in input order; a text scores alike alone or batched with others
    assert many[1]["category_scores"] == pytest.approx(result["category_scores"], abs=1e-5)
    for name, path in (("jig", jig_bundle), ("run", run_dir)):
        clf = modlab.load(path)
        got = server.post("/v1/moderations", {"input": TEXTS, "model": name}).json()["results"]
        scores = np.array([[r["category_scores"][n] for n in LABELS] for r in got])
        assert np.abs(scores - clf.predict_proba(TEXTS)).max() <= (1e-5 if name == "jig" else 2e-3), name
        for r in got:  # flags at the model's tuned thresholds
            assert r["categories"] == {n: r["category_scores"][n] >= clf.thresholds[n] for n in LABELS}
            assert r["flagged"] == any(r["categories"].values())


def test_compare_runs_every_chosen_model_on_the_same_inputs(server):
    both = server.post("/v1/compare", {"input": TEXTS[:2], "models": None})
    assert both.status_code == 200, both.text
    models = both.json()["models"]
    assert [m["model"] for m in models] == ["jig", "run"]
    for m in models:
        assert m["latency_ms"] > 0 and len(m["results"]) == 2
        alone = server.post("/v1/moderations", {"input": TEXTS[:2], "model": m["model"]}).json()["results"]
        assert [r["categories"] for r in alone] == [r["categories"] for r in m["results"]]
    chosen = server.post("/v1/compare", {"input": "hello", "models": ["run", "run"]}).json()["models"]
    assert [m["model"] for m in chosen] == ["run"]
    assert server.post("/v1/compare", {"input": "hello"}).status_code == 200  # models left out: all of them


def test_models_health_and_metrics(server, run_dir):
    listed = server.get("/v1/models").json()["data"]
    assert [m["id"] for m in listed] == ["jig", "run"]
    jig, run = listed
    assert (jig["backend"], jig["precision"], jig["labels"]) == ("onnxruntime", "fp32", LABELS)
    assert run["backend"] == "torch" and run["run_dir"] == str(run_dir)
    assert run["thresholds"] == json.loads((run_dir / "thresholds.json").read_text())["thresholds"]
    assert run["metrics"]["test/auroc_macro"] == pytest.approx(
        json.loads((run_dir / "metrics.json").read_text())["test/auroc_macro"])
    assert server.get("/healthz").json() == {"status": "ok", "models": ["jig", "run"]}

    before = server.get("/metrics").text
    server.post("/v1/moderations", {"input": "hi", "model": "jig"})
    server.post("/v1/moderations", {"input": "hi", "model": "nope"})
    after = server.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    ok = dict(route="/v1/moderations", model="jig", code="200")
    assert metric(after.text, "modlab_requests_total", **ok) == metric(before, "modlab_requests_total", **ok) + 1
    missing = dict(route="/v1/moderations", model="-", code="404")
    assert metric(after.text, "modlab_request_errors_total", **missing) >= 1
    assert metric(after.text, "modlab_request_latency_seconds_count", route="/v1/moderations", model="jig") >= 1
    assert metric(after.text, "modlab_batch_size_count", model="run") >= 1


def chunks(data: bytes, size: int = 4096):
    for start in range(0, len(data), size):
        yield data[start : start + size]


ERRORS = {
    "malformed JSON": (dict(content=b'{"input": "x",', headers={"content-type": "application/json"}), 400,
                       "not valid JSON"),
    "non-UTF-8 bytes": (dict(content=b'{"input": "\xff\xfe"}', headers={"content-type": "application/json"}), 400,
                        "UTF-8"),
    "body over the limit": (dict(json={"input": ["x" * 1000] * 21, "model": "jig"}), 413, "20,000-byte limit"),
    "streamed body over the limit": (dict(content=chunks(json.dumps({"input": "x" * 30000}).encode()),
                                          headers={"content-type": "application/json"}), 413, "--max-body-bytes"),
    "too many inputs": (dict(json={"input": ["x"] * 17, "model": "jig"}), 422, "17 texts; the limit is 16"),
    "text too long": (dict(json={"input": ["ok", "x" * 2001], "model": "jig"}), 422,
                      "input[1] has 2,001 characters; the limit is 2,000"),
    "unpaired surrogate": (dict(content=b'{"input": ["ok", "a\\ud800b"], "model": "jig"}',
                                headers={"content-type": "application/json"}), 422,
                           "input[1] holds an unpaired UTF-16 surrogate"),
    "unknown model": (dict(json={"input": "x", "model": "gpt"}), 404, "'gpt' is not loaded; loaded: jig, run"),
    "empty input list": (dict(json={"input": [], "model": "jig"}), 422, "input is an empty list"),
    "no model of two": (dict(json={"input": "x"}), 422, "model is required when several models are loaded"),
    "input not a string": (dict(json={"input": 5, "model": "jig"}), 422, "input must be a string or a list"),
    "input missing": (dict(json={"model": "jig"}), 422, "input is required"),
    "not a JSON object": (dict(json=["x"]), 422, "must be a JSON object"),
    "form instead of JSON": (dict(data={"input": "x"}), 422, "Content-Type: application/json"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_every_refusal_is_a_json_error_naming_the_fix(server, case):
    kwargs, status, part = ERRORS[case]
    got = httpx.post(server.url + "/v1/moderations", timeout=60, **kwargs)
    assert got.status_code == status, got.text
    assert got.headers["content-type"] == "application/json" and "Traceback" not in got.text
    error = got.json()["error"]
    assert part in error["message"] and "\n" not in error["message"], error
    assert set(error) == {"message", "type", "param", "code"}


def test_compare_refusals_and_unknown_routes(server):
    for body, status, part in (({"input": "x", "models": []}, 422, "models is an empty list"),
                               ({"input": "x", "models": ["jig", "nope"]}, 404, "loaded: jig, run"),
                               ({"input": "x", "models": "jig"}, 422, "models must be a list")):
        got = server.post("/v1/compare", body)
        assert got.status_code == status and part in got.json()["error"]["message"], got.text
    assert server.get("/v1/nothing").status_code == 404 and "POST /v1/moderations" in server.get("/v1/x").text
    assert server.get("/v1/moderations").json()["error"]["code"] == "method_not_allowed"
    assert server.get("/").headers["content-security-policy"].startswith("default-src 'none'")
    cross = server.post("/v1/moderations", {"input": "x", "model": "jig"}, headers={"Origin": "http://elsewhere"})
    assert cross.status_code == 200 and "access-control-allow-origin" not in cross.headers  # CORS off by default


class Picky:
    """A stand-in Classifier that fails on any batch holding the text "boom" and records its batches."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict_proba(self, texts):
        self.calls.append(list(texts))
        if "boom" in texts:
            raise RuntimeError("boom")
        return np.full((len(texts), 2), 0.5, dtype=np.float32)


def test_a_request_that_breaks_its_batch_fails_alone():
    from modlab.serve.batching import BatchSettings, MicroBatcher

    async def scenario():
        picky = Picky()
        batcher = MicroBatcher("m", picky, BatchSettings(window_ms=200))
        batcher.start()
        got = await asyncio.gather(*(batcher.score([t]) for t in ("a", "boom", "b")), return_exceptions=True)
        await batcher.stop()
        return picky.calls, got

    calls, got = asyncio.run(scenario())
    assert calls[0] == ["a", "boom", "b"]  # one batch first, then each request alone
    assert calls[1:] == [["a"], ["boom"], ["b"]]
    assert isinstance(got[1], RuntimeError) and got[0][0].shape == got[2][0].shape == (1, 2)


def concurrently(server: Server, bodies: list[dict], path: str = "/v1/moderations", headers=None) -> list:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: server.post(path, body, headers=headers), bodies))


def test_api_key_and_micro_batching(jig_bundle, tmp_path):
    """One model (so `model` may be left out), a key, and a long batch window so concurrent requests meet."""
    key = {"MODLAB_TEST_KEY": "s3cret-key"}
    with Server([str(jig_bundle)], tmp_path / "keyed.log", "--api-key-env", "MODLAB_TEST_KEY",
                "--batch-window-ms", "300", "--cors-origin", "http://trusted.example", env=key) as keyed:
        auth = {"Authorization": "Bearer s3cret-key"}
        for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"}):
            refused = keyed.post("/v1/moderations", {"input": "x"}, headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            refused = httpx.post(keyed.url + "/v1/compare", content=b"{not json", headers=headers)  # key first
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer <key>" in refused.json()["error"]["message"]
        assert keyed.get("/metrics").status_code == 401 and keyed.get("/v1/models").status_code == 401
        assert keyed.get("/healthz").status_code == 200 and keyed.get("/").status_code == 200
        assert keyed.get("/v1/models", headers=auth).json()["data"][0]["id"] == "jig"

        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        allowed = httpx.options(keyed.url + "/v1/moderations", headers={"Origin": "http://trusted.example", **preflight})
        assert allowed.headers.get("access-control-allow-origin") == "http://trusted.example"
        other = httpx.options(keyed.url + "/v1/moderations", headers={"Origin": "http://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers

        answers = concurrently(keyed, [{"input": f"text number {i}"} for i in range(24)], headers=auth)
        assert [a.status_code for a in answers] == [200] * 24
        text = keyed.get("/metrics", headers=auth).text
        assert metric(text, "modlab_batch_size_sum", model="jig") == 24
        assert metric(text, "modlab_batch_size_count", model="jig") < 12  # 24 texts met in fewer batches


def test_sigterm_lets_requests_in_flight_finish(jig_bundle, tmp_path):
    """Batching off: 16 requests of 256 long texts queue one after the other; SIGTERM lands after the first
    answer, every request still gets its answer, then the server exits 0 and takes no new connections."""
    with Server([f"jig={jig_bundle}"], tmp_path / "term.log", "--no-batching") as running:
        bodies = [{"input": [f"request {i} " + "word " * 300] * 256} for i in range(16)]
        done: list[float] = []

        def send(body):
            answer = running.post("/v1/moderations", body)
            done.append(time.monotonic())
            return answer

        with ThreadPoolExecutor(len(bodies)) as pool:
            futures = [pool.submit(send, body) for body in bodies]
            while not done:
                time.sleep(0.01)
            running.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            answers = [f.result() for f in futures]
        assert [a.status_code for a in answers] == [200] * 16
        assert all(len(a.json()["results"]) == 256 for a in answers)
        assert sum(t > signalled for t in done) >= 1, "every request finished before the signal: nothing was in flight"
        assert running.process.wait(60) == 0
        with pytest.raises(httpx.TransportError):
            running.get("/healthz")
        assert "Finished server process" in running.output() and "Traceback" not in running.output()


def test_batching_off_scores_each_request_alone(jig_bundle, tmp_path):
    with Server([str(jig_bundle)], tmp_path / "alone.log", "--no-batching", "--batch-window-ms", "300") as alone:
        assert all(a.status_code == 200 for a in concurrently(alone, [{"input": "x"}] * 8))
        assert metric(alone.get("/metrics").text, "modlab_batch_size_count", model=Path(jig_bundle).name) == 8


def test_a_full_queue_answers_503_and_the_rest_are_served(jig_bundle, tmp_path):
    with Server([str(jig_bundle)], tmp_path / "full.log", "--no-batching", "--max-queue", "300") as full:
        answers = concurrently(full, [{"input": ["word " * 300] * 256}] * 6)
        codes = sorted(a.status_code for a in answers)
        assert codes.count(200) >= 2 and 503 in codes and set(codes) <= {200, 503}, codes  # running, waiting, refused
        busy = next(a for a in answers if a.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "--max-queue 300" in busy.json()["error"]["message"]
        assert full.post("/v1/moderations", {"input": "later"}).status_code == 200


def test_start_up_failures_are_one_line_and_start_nothing(jig_bundle, tmp_path, capsys, monkeypatch):
    cli_fails(capsys, ["serve", f"a={jig_bundle}", f"b={tmp_path / 'missing'}", "--port", "0"],
                "model 'b'", "does not exist", "the server was not started")
    broken = tmp_path / "broken"
    shutil.copytree(jig_bundle, broken)
    with open(broken / "model.onnx", "r+b") as onnx:
        onnx.truncate(1000)
    cli_fails(capsys, ["serve", f"a={jig_bundle}", f"b={broken}", "--port", "0"], f"model 'b' from {broken}", "sha256",
                "the server was not started")
    cli_fails(capsys, ["serve", f"a={jig_bundle}", f"a={jig_bundle}"], "two models are named 'a'")
    cli_fails(capsys, ["serve", f"{tmp_path}/bad name"], "cannot use 'bad name' as a model name")
    monkeypatch.delenv("MODLAB_NO_SUCH_KEY", raising=False)
    cli_fails(capsys, ["serve", str(jig_bundle), "--api-key-env", "MODLAB_NO_SUCH_KEY"], "MODLAB_NO_SUCH_KEY=<key>")
    cli_fails(capsys, ["serve", str(jig_bundle), "--max-inputs", "0"], "--max-inputs 0 must be at least 1")
    cli_fails(capsys, ["serve", str(jig_bundle), "--batch-window-ms", "-1"], "--batch-window-ms", "cannot be negative")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cli_fails(capsys, ["serve", str(jig_bundle), "--port", port], f"cannot listen on 127.0.0.1:{port}", "--port")


# --- the page, in a real browser ------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def ts_bundle(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("serve-ts")
    ckpt = bare_checkpoint(tmp / "ts.ckpt", "distilbert", "attention", tmp / "cfg", labels=TRUST_SAFETY_LABELS)
    out, _ = export(ckpt, out=tmp / "trust_safety")
    return out


@pytest.fixture
def browser():
    if sync_playwright is None:
        pytest.skip("pip playwright is not installed (pip install -e '.[dev]')")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: apt-get install chromium (.ci/run installs it)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield launched
        launched.close()


def test_the_page_compares_models_side_by_side_in_a_real_browser(browser, jig_bundle, ts_bundle, tmp_path):
    with Server([f"jigsaw={jig_bundle}", f"trust_safety={ts_bundle}"], tmp_path / "page.log") as running:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda err: problems.append(str(err)))
        page.goto(running.url + "/")
        expect(page.locator("#status")).to_have_text("2 models: jigsaw, trust_safety")

        page.fill("#text", "I will find you, you worthless idiot")
        page.press("#text", "Enter")
        expect(page.locator("#columns .model")).to_have_count(2)
        for name, labels in (("jigsaw", LABELS), ("trust_safety", TRUST_SAFETY_LABELS)):
            column = page.locator(f'#columns .model[data-model="{name}"]')
            assert column.locator(".bar").count() == len(labels)
            assert column.locator(".bar .threshold").count() == len(labels)
            assert column.locator(".bar .name").all_text_contents() == labels
            assert " ms" in column.locator(".meta").text_content()
            flagged = column.locator(".bar.flagged").count()
            assert column.locator(".verdict").text_content() == ("flagged" if flagged else "clear")
        assert page.locator("#history-list .entry").count() == 1
        assert page.input_value("#text") == ""
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

        hostile = '<img src=x onerror="window.__pwned = 1">'
        page.fill("#text", hostile)
        page.press("#text", "Enter")
        expect(page.locator("#history-list .entry")).to_have_count(2)
        assert page.text_content("#current-text") == hostile  # shown as text, never run
        assert page.evaluate("window.__pwned") is None and page.locator("#current-text img").count() == 0

        entries = page.locator("#history-list .entry .text")
        page.locator("#history-list .entry").nth(1).locator(".rerun").click()  # the first message, again
        expect(entries).to_have_text(["I will find you, you worthless idiot", hostile])
        assert page.text_content("#current-text") == "I will find you, you worthless idiot"
        page.reload()  # the history stays with the page
        expect(entries).to_have_text(["I will find you, you worthless idiot", hostile])
        assert problems == [], problems
    assert (tmp_path / "page.png").stat().st_size > 10_000
