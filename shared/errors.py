"""The one JSON error shape, the domain errors every service shares, and the handlers that render them."""

import logging
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.observability import request_id_var
from shared.schemas import ErrorResponse

logger = logging.getLogger(__name__)

#: A 422 lists at most this many field errors ...
MAX_VALIDATION_ERRORS: Final = 20
#: ... and each error's message is cut to this many characters (a 422 stays a few KB, whatever the body).
MAX_VALIDATION_MESSAGE_CHARS: Final = 300
#: Detail of a 503 while a model is not loaded; each service names its model.
MODEL_NOT_LOADED: Final = "{model} model is not loaded: {reason}"


class ServiceError(Exception):
    """Base of every domain error: carries its HTTP status, a stable code and optional per-item errors."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(
        self, detail: str, *, headers: dict[str, str] | None = None, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.errors = errors


class InvalidInput(ServiceError):
    """The input cannot be processed (empty text, silent audio, ...)."""

    status_code = 422
    code = "invalid_input"


class CorruptInput(InvalidInput):
    """The bytes claim an accepted format but do not decode (corrupt or truncated file)."""

    code = "corrupt_input"


class BatchTooLarge(InvalidInput):
    """More items in one batch call than the service's ``max_batch_size``."""

    code = "batch_too_large"


class PayloadTooLarge(ServiceError):
    """The input exceeds a configured size limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    """The input's content (sniffed, not its declared type) is of a type the service does not accept."""

    status_code = 415
    code = "unsupported_media_type"


class Unauthorized(ServiceError):
    """Missing or wrong credentials."""

    status_code = 401
    code = "unauthorized"


class ModelNotReady(ServiceError):
    """The model is not loaded (yet, or at all)."""

    status_code = 503
    code = "model_not_ready"


class UpstreamError(ServiceError):
    """A service this one depends on failed."""

    status_code = 502
    code = "upstream_error"


def batch_too_large(size: int, limit: int, *, items: str) -> BatchTooLarge:
    """The one "batch too large" error, worded the same by every service."""
    return BatchTooLarge(f"Batch has {size} {items}; the limit is {limit}")


_STATUS_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}

#: The OpenAPI example of each status (detail, code); a route can pass its own with ``examples=``.
_EXAMPLES: Final[dict[int, tuple[str, str]]] = {
    400: ("The multipart body is malformed", "bad_request"),
    401: ("Invalid or expired token", "unauthorized"),
    403: ("Not allowed with these credentials", "forbidden"),
    404: ("Not found", "not_found"),
    405: ("Method Not Allowed", "method_not_allowed"),
    409: ("A user with this username or email already exists", "conflict"),
    413: ("Request body exceeds the 10,485,760-byte limit", "payload_too_large"),
    415: ("Unsupported type: detected from the content, not the file name", "unsupported_media_type"),
    422: ("text: Field required", "invalid_input"),
    429: ("Rate limit exceeded: 60 per 1 minute", "rate_limited"),
    500: ("Internal server error", "internal_error"),
    502: ("text service failed with HTTP 500", "upstream_error"),
    503: ("Model is not loaded: starting", "model_not_ready"),
    504: ("speech service timed out after 30.0 s", "upstream_timeout"),
}


def error_response(
    status_code: int,
    detail: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """Render the shared error shape."""
    body = ErrorResponse(
        detail=detail,
        code=code or _STATUS_CODES.get(status_code, "error"),
        request_id=request_id_var.get(),
        errors=errors,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status_code, headers=headers)


def error_responses(
    *status_codes: int, examples: Mapping[int, tuple[str, str]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries declaring the error shape for these statuses, each with its own example.

    ``examples`` maps a status to a ``(detail, code)`` pair specific to the route.
    """
    chosen = {**_EXAMPLES, **(examples or {})}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in status_codes:
        detail, code = chosen.get(status, ("Error", _STATUS_CODES.get(status, "error")))
        example = {"detail": detail, "code": code, "request_id": "3f2c9a7e0b1d4c5e"}
        responses[status] = {
            "model": ErrorResponse,
            "description": _STATUS_CODES.get(status, "Error"),
            "content": {"application/json": {"example": example}},
        }
    return responses


def _validation_summary(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    """The first error as a sentence plus at most MAX_VALIDATION_ERRORS short entries, inputs stripped."""
    raw = exc.errors()
    errors: list[dict[str, Any]] = []
    for err in raw[:MAX_VALIDATION_ERRORS]:
        loc = [p if isinstance(p, int) else str(p)[:100] for p in err.get("loc", ())[:10]]
        # Inputs and ctx are not echoed: they can be large uploads or secrets.
        msg = str(err.get("msg", ""))[:MAX_VALIDATION_MESSAGE_CHARS]
        errors.append({"type": str(err.get("type", "")), "loc": loc, "msg": msg})
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = f"{where}: {first.get('msg')}" if where else str(first.get("msg", "Invalid request"))
    if len(raw) > MAX_VALIDATION_ERRORS:
        message += f" ({len(raw):,} errors; the first {MAX_VALIDATION_ERRORS} are listed)"
    return message[:MAX_VALIDATION_MESSAGE_CHARS], errors


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, ours or the framework's, use :class:`ErrorResponse`."""

    async def on_service_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return error_response(exc.status_code, exc.detail, code=exc.code, headers=exc.headers, errors=exc.errors)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, errors = _validation_summary(exc)
        return error_response(422, message, code="invalid_input", errors=errors)

    async def on_unhandled(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(500, "Internal server error", code="internal_error")

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unhandled)


class CatchAllMiddleware:
    """Turn an unhandled exception into the shared 500 *inside* the middleware stack.

    Starlette's own last-resort handler sits outside every middleware: its 500 has no request
    id and no security headers, and it re-raises so the server drops the connection. Here the
    request id is still set, outer middlewares still add their headers, and nothing is re-raised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for a clean answer: let the server close the connection
                raise
            logger.exception("unhandled error", exc_info=exc)
            await error_response(500, "Internal server error", code="internal_error")(scope, receive, send)
