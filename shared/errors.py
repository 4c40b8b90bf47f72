"""The one JSON error shape, and the handlers that produce it for every 4xx/5xx."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.observability import request_id_var
from shared.schemas import ErrorResponse

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of every domain error: carries its HTTP status and a stable code."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class InvalidInput(ServiceError):
    """The input cannot be processed (corrupt file, empty text, ...)."""

    status_code = 422
    code = "invalid_input"


class PayloadTooLarge(ServiceError):
    """The input exceeds a configured size limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    """The input's content is of a type the service does not accept."""

    status_code = 415
    code = "unsupported_media_type"


class ModelNotReady(ServiceError):
    """The model is not loaded (yet, or at all)."""

    status_code = 503
    code = "model_not_ready"


class UpstreamError(ServiceError):
    """A service this one depends on failed."""

    status_code = 502
    code = "upstream_error"


_STATUS_CODES = {
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
    502: "upstream_error",
    503: "service_unavailable",
}


def error_response(
    status_code: int,
    detail: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
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


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries declaring the error shape for these statuses."""
    return {code: {"model": ErrorResponse, "description": _STATUS_CODES.get(code, "Error")} for code in status_codes}


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, ours or the framework's, use :class:`ErrorResponse`."""

    async def on_service_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return error_response(exc.status_code, exc.detail, code=exc.code, headers=exc.headers)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg", "Invalid request"))
        # Strip echoed inputs: they can be large uploads or secrets.
        for err in errors:
            err.pop("input", None)
            err.pop("ctx", None)
        return error_response(422, message, code="invalid_input", errors=errors)

    async def on_unhandled(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(500, "Internal server error", code="internal_error")

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unhandled)
