"""The skeleton every service is built on: middleware, error handlers, probes, metrics and the model lifespan.

An inference service is a ``load()`` (plus an optional ``warmup(model)``) and a router:
:func:`create_inference_app` owns the lifespan, loads and warms the model in a worker thread,
turns any failure into a not-ready reason on ``/readyz`` and serves the routes. The gateway,
which has a database instead of a model, uses :func:`create_service_app` with its own lifespan.
"""

import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Final, Generic, TypeVar

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import CatchAllMiddleware, error_response, error_responses, install_error_handlers
from shared.limits import BodySizeLimitMiddleware
from shared.observability import Metrics, RequestContextMiddleware, configure_logging, metrics_endpoint
from shared.settings import INTERNAL_TOKEN_HEADER, BaseServiceSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)

#: Every response's Content-Security-Policy unless a path prefix has its own.
DEFAULT_CSP: Final = "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
#: FastAPI's /docs and /redoc pages load their bundles from jsDelivr and start with an inline script.
DOCS_CSP: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'"
)
DEFAULT_CSP_BY_PATH: Final[Mapping[str, str]] = {"/docs": DOCS_CSP, "/redoc": DOCS_CSP}

#: Probes a kubelet calls without credentials; everything else needs the internal token when one is set.
PUBLIC_PATHS: Final = frozenset({"/livez", "/readyz"})
INTERNAL_TOKEN_REQUIRED: Final = f"Missing or wrong {INTERNAL_TOKEN_HEADER} header"
NOT_READY: Final = "Not ready: {reason}"

# A file path of two or more components (absolute or relative, POSIX or Windows): cut to its last one.
_PATH = re.compile(r"(?:[A-Za-z]:)?[\w.@+~-]*(?:[\\/][\w.@+~-]+){2,}[\\/]?")


def redact_paths(text: str) -> str:
    """``text`` with server file paths cut to their last component (``/srv/app/model.pt`` -> ``model.pt``)."""
    return _PATH.sub(lambda m: re.split(r"[\\/]", m.group(0).rstrip("\\/"))[-1] or "<path>", text)


class SecurityHeadersMiddleware:
    """Add conservative security headers and a Content-Security-Policy (per path prefix) to every response."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts: bool = False,
        csp: str = DEFAULT_CSP,
        csp_by_path: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.headers = list(SECURITY_HEADERS)
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
        self.csp = csp.encode()
        # Longest prefix first, so /docs/oauth2-redirect can differ from /docs.
        by_path = DEFAULT_CSP_BY_PATH if csp_by_path is None else csp_by_path
        self.csp_by_path = sorted(((p, v.encode()) for p, v in by_path.items()), key=lambda pv: -len(pv[0]))

    def policy(self, path: str) -> bytes:
        """The CSP for ``path``."""
        for prefix, value in self.csp_by_path:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return value
        return self.csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [*self.headers, (b"content-security-policy", self.policy(scope.get("path", "")))]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class InternalTokenMiddleware:
    """401 unless the request carries the shared internal token (service-to-service auth).

    Every path but the probes is protected, /docs, /openapi.json and /metrics included. The
    comparison is constant-time.
    """

    def __init__(self, app: ASGIApp, *, token: str, public_paths: frozenset[str] = PUBLIC_PATHS) -> None:
        self.app = app
        self.token = token.encode()
        self.public_paths = public_paths
        self.header = INTERNAL_TOKEN_HEADER.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.public_paths:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers") or [] if k == self.header), b"")
        if not hmac.compare_digest(given, self.token):
            await error_response(401, INTERNAL_TOKEN_REQUIRED, code="unauthorized")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_service_app(
    *,
    name: str,
    title: str,
    description: str,
    version: str,
    settings: BaseServiceSettings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    openapi_tags: list[dict[str, Any]] | None = None,
    csp: str = DEFAULT_CSP,
    csp_by_path: Mapping[str, str] | None = None,
    require_internal_token: bool = False,
) -> FastAPI:
    """A FastAPI app with logging, request ids, metrics, probes, limits, headers and the shared error shape.

    Readiness is ``app.state.ready``: the lifespan sets it once the model (or DB) is usable.
    ``csp_by_path`` maps path prefixes to their own Content-Security-Policy (default: a relaxed
    one for /docs and /redoc). With ``require_internal_token`` and ``INTERNAL_TOKEN`` set, every
    route but /livez and /readyz needs the ``X-Internal-Token`` header.
    """
    configure_logging(service=name, level=settings.log_level, json=settings.log_json)
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan, openapi_tags=openapi_tags)
    app.state.settings = settings
    app.state.ready = False
    app.state.not_ready_reason = "starting"
    metrics = Metrics(name)
    app.state.metrics = metrics
    install_error_handlers(app)

    # add_middleware puts each one outside the previous: the request id wraps everything, so
    # even a 401, a 413 or a last-resort 500 carries it and the security headers.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(CatchAllMiddleware)
    token = settings.internal_token.get_secret_value() if settings.internal_token else ""
    if require_internal_token and token:
        app.add_middleware(InternalTokenMiddleware, token=token)
    app.add_middleware(
        SecurityHeadersMiddleware, hsts=settings.environment == "production", csp=csp, csp_by_path=csp_by_path
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
        )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.include_router(probes_router)
    app.add_route("/metrics", metrics_endpoint(metrics), include_in_schema=False)
    _document_validation_errors(app)
    return app


#: ``/livez`` (process up) and ``/readyz`` (model or dependencies loaded).
probes_router = APIRouter(tags=["health"])


@probes_router.get("/livez", operation_id="livez", summary="Liveness probe")
async def livez() -> dict[str, str]:
    """200 while the process serves requests."""
    return {"status": "ok"}


@probes_router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness probe: 503 until the model is loaded",
    responses=error_responses(503, examples={503: (NOT_READY.format(reason="loading the model"), "not_ready")}),
)
async def readyz(request: Request) -> JSONResponse:
    """200 once the model (or database) is usable, else 503 with the reason."""
    state = request.app.state
    if not state.ready:
        return error_response(503, NOT_READY.format(reason=redact_paths(str(state.not_ready_reason))), code="not_ready")
    return JSONResponse({"status": "ready"})


def _document_validation_errors(app: FastAPI) -> None:
    """Document FastAPI's automatic 422 responses with the shared error shape they really have."""
    default_openapi = app.openapi
    example = error_responses(422)[422]["content"]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = default_openapi()
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                response = operation.get("responses", {}).get("422")
                content = (response or {}).get("content", {}).get("application/json", {})
                if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                    response["description"] = "invalid_input"
                    content["schema"] = {"$ref": "#/components/schemas/ErrorResponse"}
                    content.setdefault("example", example["application/json"]["example"])
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# --------------------------------------------------------------------------- inference services


class ModelLifespan(Generic[M]):
    """Load (and warm up) a model off the event loop; any failure becomes the not-ready reason.

    ``while_ready(app, model)`` is an optional async context entered once the model is warm and
    left at shutdown: the place for long-lived helpers such as a micro-batcher. ``/readyz``
    turns green only after load, warm-up and that context's start all succeeded.
    """

    def __init__(
        self,
        *,
        model_title: str,
        load: Callable[[], M],
        warmup: Callable[[M], object] | None = None,
        while_ready: Callable[[FastAPI, M], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.model_title = model_title
        self.load = load
        self.warmup = warmup
        self.while_ready = while_ready

    async def _start(self, app: FastAPI) -> M | None:
        step = "loading"
        try:
            app.state.not_ready_reason = "loading the model"
            model = await anyio.to_thread.run_sync(self.load)
            if self.warmup is not None:
                step, app.state.not_ready_reason = "warming up", "warming up the model"
                warmup = self.warmup
                await anyio.to_thread.run_sync(lambda: warmup(model))
        except Exception as exc:
            # Whatever the model code raised (a missing file, a Keras or torch error), the process
            # stays up and says why on /readyz; the log keeps the full traceback.
            app.state.not_ready_reason = f"{step} failed: {redact_paths(_describe(exc))}"
            logger.exception("%s model not ready: %s failed", self.model_title, step)
            return None
        return model

    @asynccontextmanager
    async def __call__(self, app: FastAPI) -> AsyncIterator[None]:
        app.state.model = None
        async with AsyncExitStack() as helpers:
            model = await self._start(app)
            if model is not None and self.while_ready is not None:
                try:
                    await helpers.enter_async_context(self.while_ready(app, model))
                except Exception as exc:
                    app.state.not_ready_reason = f"starting failed: {redact_paths(_describe(exc))}"
                    logger.exception("%s service helpers failed to start", self.model_title)
                    model = None
            if model is not None:
                app.state.model = model
                app.state.ready, app.state.not_ready_reason = True, ""
                info = {"model": getattr(model, "name", None), "version": getattr(model, "version", None)}
                logger.info("%s model ready", self.model_title, extra=info)
            try:
                yield
            finally:
                app.state.ready, app.state.not_ready_reason = False, "shutting down"
                app.state.model = None


def _describe(exc: BaseException) -> str:
    message = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def create_inference_app(
    *,
    name: str,
    title: str,
    description: str,
    version: str,
    settings: BaseServiceSettings,
    load: Callable[[], M],
    routers: Sequence[APIRouter],
    tag_description: str,
    model_title: str,
    warmup: Callable[[M], object] | None = None,
    while_ready: Callable[[FastAPI, M], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """An inference service: the shared app, a model lifespan, the internal-token check and ``routers``.

    The routers' operations carry the tag ``name`` (one tag per service); routes reach the
    model with :data:`shared.deps.ModelDep`-style aliases, which answer 503 until it is ready.
    """
    lifespan = ModelLifespan(model_title=model_title, load=load, warmup=warmup, while_ready=while_ready)
    app = create_service_app(
        name=name,
        title=title,
        description=description,
        version=version,
        settings=settings,
        lifespan=lifespan,
        openapi_tags=[{"name": name, "description": tag_description}, {"name": "health"}],
        require_internal_token=True,
    )
    app.state.model = None
    app.state.model_title = model_title
    for router in routers:
        app.include_router(router, tags=[name])
    return app


async def run_inference(metrics: Metrics, fn: Callable[[list[Any]], T], batch: list[Any]) -> T:
    """Call a model on a batch in a worker thread (never on the event loop) and record it."""
    start = time.perf_counter()
    result = await anyio.to_thread.run_sync(fn, batch)
    metrics.observe_batch(len(batch), time.perf_counter() - start)
    return result
