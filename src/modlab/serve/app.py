"""The FastAPI app over loaded Classifiers: moderation and comparison routes, the page, health and metrics.

Every answer is JSON or the page; a refused request gets `{"error": {...}}` with the status the API promises
(400 malformed JSON, 401 API key, 404 unknown model or route, 413 body size, 422 a limit or a bad field,
500 a model failure, 503 a model's queue full) and never a stack trace (the server log has it). Scoring goes through each model's
MicroBatcher, so the event loop only parses, queues and answers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from modlab import __version__
from modlab.errors import one_line
from modlab.serve import models as served
from modlab.serve.batching import BatchSettings, MicroBatcher, Overloaded
from modlab.serve.schemas import (
    CompareRequest,
    CompareResponse,
    Limits,
    ModelComparison,
    ModerationRequest,
    ModerationResponse,
    RequestFailed,
    results,
    texts_of,
)
from modlab.serve.telemetry import Telemetry

log = logging.getLogger("modlab.serve")

PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"), "/page.js": ("page.js", "text/javascript"),
              "/page.css": ("page.css", "text/css")}
# The page loads nothing from elsewhere and runs only its own script: a comment rendered on it cannot either.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                                           "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                "Cache-Control": "no-cache"}
FIELD_HINTS = {"input": "input must be a string or a list of strings",
               "model": "model must be the name of a loaded model (a string)",
               "models": "models must be a list of loaded model names, or null for all"}


@dataclass(frozen=True)
class ServeSettings:
    limits: Limits = field(default_factory=Limits)
    batching: BatchSettings = field(default_factory=BatchSettings)
    api_key: str | None = None  # requests to /v1 and /metrics must send `Authorization: Bearer <key>`
    cors_origins: tuple[str, ...] = ()  # none: browsers may call the API from this server's page only


def error(status: int, message: str, param: str | None = None, code: str = "invalid_request",
          headers: dict | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status, headers=headers)


def too_large(limit: int) -> str:
    return f"the body is over the {limit:,}-byte limit (--max-body-bytes); send fewer or shorter texts"


def validation_message(errors: list[dict]) -> tuple[int, str, str | None]:
    """(status, message, field) of pydantic's errors for a request body, one line."""
    if any(e.get("type") == "json_invalid" for e in errors):
        where = next(e for e in errors if e.get("type") == "json_invalid")
        detail = (where.get("ctx") or {}).get("error", "")
        return 400, f"the body is not valid JSON ({detail} at character {where['loc'][-1]}); send a JSON object " \
                    f'like {{"input": "text"}}', None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    name = loc[0] if loc else None
    if name is None:
        return 422, 'the body must be a JSON object like {"input": "text"} (Content-Type: application/json)', None
    if first.get("type") == "missing":
        return 422, f"{name} is required", name
    return 422, FIELD_HINTS.get(name, f"{name}: {first.get('msg', 'invalid value')}"), name


class BodyLimit:
    """413 for a body over `limit` bytes: at once from Content-Length, else while it streams in. (FastAPI's own
    `max_body_size` answers a declared oversize body in plain text, outside the API's error shape.)"""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await error(413, too_large(self.limit), code="body_too_large")(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413)  # answered by the app's HTTPException handler, in the API's shape
            return message

        return await self.app(scope, counted, send)


class ApiKey:
    """401 for /v1 and /metrics without `Authorization: Bearer <key>`, before the body is read or parsed (so a
    caller without the key learns nothing from validation errors); the page and /healthz stay open."""

    def __init__(self, app, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        guarded = scope["type"] == "http" and (scope["path"].startswith("/v1/") or scope["path"] == "/metrics")
        if guarded:
            header = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, key = header.partition(b" ")
            if scheme.lower() != b"bearer" or not secrets.compare_digest(key.strip(), self.key):
                refused = error(401, "missing or wrong API key; send the header Authorization: Bearer <key>",
                                code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
                return await refused(scope, receive, send)
        return await self.app(scope, receive, send)


class Recorder:
    """Counts and times every request for /metrics, under its route and the models it used."""

    def __init__(self, app, telemetry: Telemetry, routes: set[str]) -> None:
        self.app, self.telemetry, self.routes = app, telemetry, routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope["path"] if scope["path"] in self.routes else "other"
            used = (scope.get("state") or {}).get("models") or []
            self.telemetry.request(route, used, status[0], time.perf_counter() - started)


def create_app(classifiers: dict, settings: ServeSettings | None = None) -> FastAPI:
    """The app over {name: Classifier} (loaded already, see modlab.serve.models.load_all)."""
    settings = settings or ServeSettings()
    limits, telemetry = settings.limits, Telemetry()
    batchers = {name: MicroBatcher(name, clf, settings.batching, telemetry.batch) for name, clf in classifiers.items()}
    pages = {route: (resources.files("modlab.serve").joinpath("page", file).read_bytes(), kind)
             for route, (file, kind) in PAGE_FILES.items()}

    @asynccontextmanager
    async def lifespan(app):
        for batcher in batchers.values():
            batcher.start()
        yield
        await asyncio.gather(*(batcher.stop() for batcher in batchers.values()))

    # No Swagger page: it loads its scripts from a CDN, and the server must work offline; /openapi.json stays.
    app = FastAPI(title="modlab", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Multi-label moderation models from modlab, side by side.")

    def model_named(name: str | None) -> str:
        if name is None:
            if len(classifiers) == 1:
                return next(iter(classifiers))
            raise RequestFailed(422, f"model is required when several models are loaded: {', '.join(classifiers)}",
                                "model")
        if name not in classifiers:
            raise RequestFailed(404, f"model {name!r} is not loaded; loaded: {', '.join(classifiers)}", "model",
                                "model_not_found")
        return name

    async def scored(name: str, texts: list[str]):
        try:
            probs, _ = await batchers[name].score(texts)
        except Overloaded as err:
            raise RequestFailed(503, str(err), None, "overloaded") from None
        except Exception as err:  # noqa: BLE001 - the client gets one line, the log the traceback
            log.exception("model %s failed on a batch", name)
            raise RequestFailed(500, f"model {name!r} failed on this request ({one_line(err, 200)})", None,
                                "model_error") from None
        clf = classifiers[name]
        return results(clf.labels, probs, clf.flags(probs))

    @app.exception_handler(RequestFailed)
    async def refused(request: Request, err: RequestFailed):
        headers = {"Retry-After": "1"} if err.status == 503 else None
        return error(err.status, err.message, err.param, err.code, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        status, message, param = validation_message(list(err.errors()))
        return error(status, message, param, "invalid_json" if status == 400 else "invalid_field")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        if err.status_code == 404:
            return error(404, f"no route {request.url.path}; the API is POST /v1/moderations, POST /v1/compare, "
                              f"GET /v1/models, /healthz, /metrics, /openapi.json, and the page at /", code="not_found")
        if err.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed")
        if err.status_code == 413:
            return error(413, too_large(limits.max_body_bytes), code="body_too_large")
        return error(err.status_code, f"{err.detail}; send a UTF-8 JSON object like {{\"input\": \"text\"}}",
                     code="bad_request")

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception):
        log.error("unexpected error on %s %s: %s", request.method, request.url.path, one_line(err))
        return error(500, "internal error; the server log has the details", code="internal_error")

    @app.post("/v1/moderations", response_model=ModerationResponse)
    async def moderations(body: ModerationRequest, request: Request) -> ModerationResponse:
        texts = texts_of(body.input, limits)
        name = model_named(body.model)
        request.state.models = [name]
        return ModerationResponse(id=f"modr-{secrets.token_hex(12)}", model=name, results=await scored(name, texts))

    @app.post("/v1/compare", response_model=CompareResponse)
    async def compare(body: CompareRequest, request: Request) -> CompareResponse:
        if body.models is not None and not body.models:
            raise RequestFailed(422, "models is an empty list; name 1 or more loaded models, or send null for all",
                                "models")
        texts = texts_of(body.input, limits)
        names = list(dict.fromkeys(model_named(n) for n in body.models)) if body.models else list(classifiers)
        request.state.models = names

        async def timed(name: str) -> ModelComparison:
            started = time.perf_counter()
            found = await scored(name, texts)
            return ModelComparison(model=name, latency_ms=round((time.perf_counter() - started) * 1000, 2),
                                   results=found)

        return CompareResponse(id=f"cmp-{secrets.token_hex(12)}", models=await asyncio.gather(*map(timed, names)))

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list", "data": [served.describe(name, clf) for name, clf in classifiers.items()]}

    @app.get("/healthz")
    async def health() -> dict:
        return {"status": "ok", "models": list(classifiers)}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(telemetry.render(), media_type=telemetry.content_type)

    def page(route: str):
        content, kind = pages[route]

        async def serve_page() -> Response:
            return Response(content, media_type=kind, headers=PAGE_HEADERS)

        return serve_page

    for route in PAGE_FILES:
        app.add_api_route(route, page(route), methods=["GET"], include_in_schema=False)

    # Outermost last: Recorder -> CORS (answers preflights, which carry no key) -> ApiKey -> BodyLimit -> routes.
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    if settings.api_key is not None:
        app.add_middleware(ApiKey, key=settings.api_key)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Recorder, telemetry=telemetry, routes={r.path for r in app.routes})
    return app
