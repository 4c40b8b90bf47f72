"""App wiring every service shares: middleware, error handlers, probes and metrics.

Each service still owns its settings, routes, lifespan and model; this only removes the
boilerplate that would otherwise be copied five times.
"""

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import error_response, error_responses, install_error_handlers
from shared.limits import BodySizeLimitMiddleware
from shared.observability import Metrics, RequestContextMiddleware, configure_logging, metrics_endpoint
from shared.settings import BaseServiceSettings

T = TypeVar("T")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeadersMiddleware:
    """Add conservative security headers to every response."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers = list(SECURITY_HEADERS)
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_service_app(
    *,
    name: str,
    title: str,
    description: str,
    version: str,
    settings: BaseServiceSettings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    openapi_tags: list[dict[str, Any]] | None = None,
) -> FastAPI:
    """A FastAPI app with logging, request ids, metrics, probes, limits and the shared error shape.

    Readiness is ``app.state.ready``: the lifespan sets it once the model (or DB) is usable.
    """
    configure_logging(service=name, level=settings.log_level, json=settings.log_json)
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan, openapi_tags=openapi_tags)
    app.state.ready = False
    app.state.not_ready_reason = "starting"
    metrics = Metrics(name)
    app.state.metrics = metrics
    install_error_handlers(app)

    # Outermost first: request id wraps everything so even 413s carry it.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.environment == "production")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
        )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.include_router(probes_router())
    app.add_route("/metrics", metrics_endpoint(metrics), include_in_schema=False)
    return app


def probes_router() -> APIRouter:
    """``/livez`` (process up) and ``/readyz`` (model or dependencies loaded)."""
    router = APIRouter(tags=["health"])

    @router.get("/livez", operation_id="livez", summary="Liveness probe")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        operation_id="readyz",
        summary="Readiness probe: 503 until the model is loaded",
        responses=error_responses(503),
    )
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        if not state.ready:
            return error_response(503, f"Not ready: {state.not_ready_reason}", code="not_ready")
        return JSONResponse({"status": "ready"})

    return router


async def run_inference(metrics: Metrics, fn: Callable[[list[Any]], T], batch: list[Any]) -> T:
    """Call a model on a batch in a worker thread (never on the event loop) and record it."""
    start = time.perf_counter()
    result = await anyio.to_thread.run_sync(fn, batch)
    metrics.observe_batch(len(batch), time.perf_counter() - start)
    return result
