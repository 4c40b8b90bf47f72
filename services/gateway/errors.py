"""Gateway domain errors and the messages they carry (reused in OpenAPI examples and tests)."""

from shared.errors import ServiceError

INVALID_CREDENTIALS = "Incorrect username or password"
NOT_AUTHENTICATED = "Not authenticated: send a bearer token or an X-API-Key header"
INVALID_TOKEN = "Invalid or expired token"
REVOKED_TOKEN = "Token has been revoked"
INVALID_API_KEY = "Invalid or revoked API key"
INACTIVE_USER = "User account is disabled"
LOGOUT_NEEDS_BEARER = "Logout revokes a bearer token; revoke API keys with DELETE /api/keys/{id}"
DUPLICATE_USER = "A user with this username or email already exists"
PREDICTION_NOT_FOUND = "Prediction not found"
API_KEY_NOT_FOUND = "API key not found"
NO_INPUT = "Send at least one of: audio, image, text"
DATABASE_NOT_MIGRATED = "Database schema is not migrated"
SESSION_REQUIRED = "This needs a user session (bearer token from /api/login), not an API key"
MISSING_SCOPE = "This API key lacks the '{scope}' scope"


class Unauthorized(ServiceError):
    """Missing, invalid, expired or revoked credentials."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    """Authenticated, but not allowed."""

    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    """The resource does not exist (or belongs to someone else)."""

    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    """The resource already exists."""

    status_code = 409
    code = "conflict"


class BadRequest(ServiceError):
    """The request is well-formed but not applicable."""

    status_code = 400
    code = "bad_request"


class UpstreamFailure(ServiceError):
    """Every modality failed: carries the HTTP status and per-modality errors (rendered by the shared handler)."""

    code = "upstream_error"

    def __init__(self, detail: str, *, status_code: int, code: str, errors: list[dict[str, object]]) -> None:
        super().__init__(detail, errors=[dict(e) for e in errors])
        self.status_code = status_code
        self.code = code


class DatabaseNotMigrated(RuntimeError):
    """Startup refusal: the database is behind the migrations shipped with the code."""
