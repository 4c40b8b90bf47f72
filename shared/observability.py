"""JSON logging, request-id propagation and Prometheus metrics, shared by every service."""

import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pythonjsonlogger.json import JsonFormatter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(*, service: str, level: str = "INFO", json: bool = True) -> None:
    """Send every log line to stdout, as JSON carrying the service name and request id."""
    handler = logging.StreamHandler(sys.stdout)
    if json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                static_fields={"service": service},
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        # uvicorn --no-access-log leaves the access logger without handlers and not propagating:
        # keep it off rather than re-enabling it through the root handler.
        if name == "uvicorn.access" and not logger.handlers and not logger.propagate:
            continue
        logger.handlers[:] = []
        logger.propagate = True


class Metrics:
    """Per-app Prometheus collectors (own registry so tests can build many apps)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total", "HTTP requests", ["service", "method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "inference_batch_size",
            "Inputs per model call",
            ["service"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.inference_latency = Histogram(
            "inference_duration_seconds", "Model call latency", ["service"], registry=self.registry
        )
        self.service = service

    def observe_batch(self, size: int, seconds: float) -> None:
        """Record one model call."""
        self.batch_size.labels(self.service).observe(size)
        self.inference_latency.labels(self.service).observe(seconds)

    def render(self) -> Response:
        """The Prometheus text exposition."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestContextMiddleware:
    """Adopt or mint a request id, echo it back, time the request and count it.

    A pure ASGI middleware (not BaseHTTPMiddleware) so the request id contextvar is
    visible to handlers and streaming bodies are not buffered.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(REQUEST_ID_HEADER.lower().encode())
        request_id = _sanitise_request_id(incoming.decode("latin-1") if incoming else None)
        token = request_id_var.set(request_id)
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.lower().encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = _route_template(scope)
            method = scope.get("method", "GET")
            self.metrics.requests.labels(self.metrics.service, method, path, str(status)).inc()
            self.metrics.latency.labels(self.metrics.service, method, path).observe(time.perf_counter() - start)
            request_id_var.reset(token)


def _route_template(scope: Scope) -> str:
    """The matched route as a template (``/api/predictions/{prediction_id}``), for low-cardinality labels.

    Rebuilt from the concrete path and its parameters: with included routers the route
    object's own ``path`` lacks the router prefix.
    """
    if scope.get("route") is None:
        return "unmatched"
    segments = str(scope.get("path", "")).split("/")
    for name, value in (scope.get("path_params") or {}).items():
        for i in range(len(segments) - 1, -1, -1):
            if segments[i] == str(value):
                segments[i] = "{" + name + "}"
                break
    return "/".join(segments)


def _sanitise_request_id(value: str | None) -> str:
    # Accept a caller's id only if it is short and printable; otherwise mint one (log injection).
    if value and len(value) <= 128 and value.isascii() and value.isprintable():
        return value
    return uuid.uuid4().hex


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    """A handler serving ``metrics``."""

    async def handler(_: Request) -> Response:
        return metrics.render()

    return handler
