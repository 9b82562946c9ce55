"""A real `modlab serve` in a subprocess for tests: started on a free port, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

URL = re.compile(r"on http://127\.0\.0\.1:(\d+)/")


class Server:
    """`with Server(["a=PATH", ...], log=tmp / "serve.log", "--max-inputs", "8") as server: server.post(...)`."""

    def __init__(self, models: list[str], log: Path, *options: str, env: dict | None = None) -> None:
        self.log_path = log
        self.argv = [sys.executable, "-m", "modlab", "serve", *models, "--port", "0", *options]
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 120) -> Server:
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"modlab serve exited {self.process.returncode}:\n{self.output()}")
            found = URL.search(self.output())
            if found:
                self.url = f"http://127.0.0.1:{found.group(1)}"
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"modlab serve did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, timeout=60, **kwargs)

    def post(self, path: str, json=None, **kwargs) -> httpx.Response:
        return httpx.post(self.url + path, json=json, timeout=60, **kwargs)
