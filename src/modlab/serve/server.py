"""`modlab serve`: load every model (or fail with one line), bind, and run the app on uvicorn.

The socket is bound here before uvicorn starts, so a taken port is one line and `--port 0` picks a free one
(the printed URL has it). uvicorn turns SIGTERM and SIGINT into a graceful shutdown: it stops accepting,
the requests in flight finish (up to `graceful_timeout` seconds), then the batchers drain and stop.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket

from modlab.errors import ModlabError
from modlab.serve import models as served
from modlab.serve.batching import SERVE_BATCH_SIZE

log = logging.getLogger("modlab.serve")


def api_key_from(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "").strip()
    if not key:
        raise ModlabError(f"--api-key-env {variable}: the variable is not set or empty; export {variable}=<key> first "
                          f"(the key is read from the environment so it never shows in the process list)")
    return key


def bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ModlabError(f"--host {host}: cannot resolve it ({err.strerror}); use an address such as 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ModlabError(f"cannot listen on {host}:{port} ({err.strerror}); pick another --port (0 picks a free one)") \
            from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(wanted: list[served.ModelArg], host: str = "127.0.0.1", port: int = 8000, settings=None,
          threads: int | None = None,
          batch_size: int = SERVE_BATCH_SIZE, graceful_timeout: float = 30.0, access_log: bool = False) -> None:
    import uvicorn

    from modlab.serve.app import ServeSettings, create_app

    settings = settings or ServeSettings()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the per-model thread caps cover tokenizing too
    sock = bind(host, port)  # before loading: a taken port should not cost a model load
    classifiers = served.load_all(wanted, threads=threads, batch_size=batch_size)
    if not is_loopback(host) and settings.api_key is None:
        log.warning("serving on %s without an API key: anyone who can reach it can use it (--api-key-env VAR)", host)
    app = create_app(classifiers, settings)
    actual = sock.getsockname()[1]
    each = served.threads_per_model(len(classifiers), threads)
    loaded = "; ".join(f"{name}: {clf.describe()}, {len(clf.labels)} labels" for name, clf in classifiers.items())
    print(f"modlab serve: {len(classifiers)} model(s) ({loaded}; {each} thread(s) each) on "
          f"http://{host}:{actual}/ (page at /, API at /v1, spec at /openapi.json)", flush=True)
    config = uvicorn.Config(app, log_level="info", access_log=access_log, server_header=False,
                            timeout_graceful_shutdown=graceful_timeout, lifespan="on")
    # uvicorn handles the signals while it runs, then re-sends each one it got to the handler that was there
    # before: these, so a graceful stop ends with status 0 and one line rather than a death by signal.
    stopped_by: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: stopped_by.append(number))
    uvicorn.Server(config).run(sockets=[sock])
    if stopped_by:
        print(f"modlab serve: stopped on {signal.Signals(stopped_by[0]).name}; the requests in flight were answered",
              flush=True)
