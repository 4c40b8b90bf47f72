"""FastAPI dependencies: settings, DB session, the authenticated principal, rate limits."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway import repository
from services.gateway.auth import (
    API_KEY_SCOPES,
    InvalidToken,
    TokenClaims,
    decode_access_token,
    hash_api_key,
    looks_like_api_key,
)
from services.gateway.db import get_session
from services.gateway.errors import (
    INACTIVE_USER,
    INVALID_API_KEY,
    INVALID_TOKEN,
    MISSING_SCOPE,
    NOT_AUTHENTICATED,
    REVOKED_TOKEN,
    SESSION_REQUIRED,
    Forbidden,
    Unauthorized,
)
from services.gateway.fanout import Fanout
from services.gateway.models import ApiKey, User
from services.gateway.ratelimit import RateLimits, client_ip
from services.gateway.settings import Settings
from services.gateway.writer import PredictionWriter

API_KEY_HEADER = "X-API-Key"

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/login", auto_error=False, description="Log in with username (or email) and password."
)
api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description=(
        "An API key from POST /api/keys (for backend clients). A key may only do what its scopes allow: "
        + "; ".join(f"`{name}`: {text}" for name, text in API_KEY_SCOPES.items())
        + " Key management, logout and the profile need a bearer token."
    ),
)


# The accessors below are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in
# the thread pool, a thread hop per dependency per request for a single attribute read.


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_rate_limits(request: Request) -> RateLimits:
    """The app's rate limiter."""
    limits: RateLimits = request.app.state.rate_limits
    return limits


async def get_fanout(request: Request) -> Fanout:
    """The app's inference-service caller (wraps the shared httpx client)."""
    fanout: Fanout = request.app.state.fanout
    return fanout


async def get_writer(request: Request) -> PredictionWriter:
    """The app's prediction writer (rows of concurrent requests share a commit)."""
    writer: PredictionWriter = request.app.state.writer
    return writer


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RateLimitsDep = Annotated[RateLimits, Depends(get_rate_limits)]
FanoutDep = Annotated[Fanout, Depends(get_fanout)]
WriterDep = Annotated[PredictionWriter, Depends(get_writer)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, through a bearer token or an API key."""

    user: User
    token: TokenClaims | None = None
    api_key: ApiKey | None = None

    @property
    def rate_key(self) -> str:
        """The per-user rate-limit key: each API key is limited on its own."""
        if self.api_key is not None:
            return f"key:{self.api_key.id}"
        return f"user:{self.user.id}"


async def limit_by_ip(request: Request, limits: RateLimitsDep) -> None:
    """Per client IP limit, on every API route."""
    await limits.hit(limits.ip, key=f"ip:{client_ip(request)}", scope="api")


async def limit_auth(request: Request, limits: RateLimitsDep) -> None:
    """The stricter per-IP limit on login and register (password guessing, sign-up spam)."""
    await limits.hit(limits.auth, key=f"ip:{client_ip(request)}", scope="auth")


async def _from_api_key(session: AsyncSession, value: str) -> Principal:
    key = (
        await repository.find_api_key(session=session, key_hash=hash_api_key(value))
        if looks_like_api_key(value)
        else None
    )
    if key is None or key.revoked_at is not None:
        raise Unauthorized(INVALID_API_KEY)
    if not key.user.is_active:
        raise Unauthorized(INACTIVE_USER)
    await repository.touch_api_key(session=session, key=key)
    return Principal(user=key.user, api_key=key)


async def _from_token(session: AsyncSession, settings: Settings, token: str) -> Principal:
    try:
        claims = decode_access_token(token, secret=settings.secret_key.get_secret_value())
    except InvalidToken as exc:
        raise Unauthorized(INVALID_TOKEN) from exc
    # One round trip: the user and whether this token id was revoked.
    user, revoked = await repository.user_for_token(session=session, user_id=claims.user_id, jti=claims.jti)
    # A token older than its account was issued to an account that no longer exists (ids
    # are never reused, this is the second lock); iat has whole seconds only.
    if user is None or claims.issued_at < user.created_at.replace(microsecond=0):
        raise Unauthorized(INVALID_TOKEN)
    if revoked or claims.version != user.token_version:
        raise Unauthorized(REVOKED_TOKEN)
    if not user.is_active:
        raise Unauthorized(INACTIVE_USER)
    return Principal(user=user, token=claims)


async def current_principal(
    session: SessionDep,
    settings: SettingsDep,
    limits: RateLimitsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """Authenticate by X-API-Key or bearer token (401 otherwise), then apply the per-user limit."""
    if api_key:
        principal = await _from_api_key(session, api_key)
    elif token:
        principal = await _from_token(session, settings, token)
    else:
        raise Unauthorized(NOT_AUTHENTICATED)
    await limits.hit(limits.user, key=principal.rate_key, scope="user")
    return principal


async def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> User:
    """The authenticated user."""
    return principal.user


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentUser = Annotated[User, Depends(current_user)]


async def end_auth_transaction(session: SessionDep) -> None:
    """Commit the authentication's reads, so the pooled connection goes back before the route's own work.

    A prediction then waits on the services holding no database connection: otherwise every
    request in flight holds one, and concurrency beyond the pool (``DB_POOL_SIZE`` + overflow;
    five + ten for SQLite) queues for a connection instead of reaching the services. Loaded
    objects stay usable (``expire_on_commit=False``).
    """
    await session.commit()


async def require_session(principal: CurrentPrincipal) -> None:
    """403 for API keys: key management, logout and the profile need a user's bearer token."""
    if principal.token is None:
        raise Forbidden(SESSION_REQUIRED)


def require_scope(scope: str) -> Callable[[Principal], Awaitable[None]]:
    """A dependency: API keys need ``scope`` (user sessions may do everything)."""
    if scope not in API_KEY_SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(principal: CurrentPrincipal) -> None:
        if principal.api_key is not None and scope not in principal.api_key.scopes.split():
            raise Forbidden(MISSING_SCOPE.format(scope=scope))

    check.api_key_scope = scope  # type: ignore[attr-defined]  # read by access_of() for OpenAPI
    return check


def access_of(dependant: Dependant) -> tuple[bool, list[str]]:
    """Whether a route needs a user session, and the API-key scopes it needs (for OpenAPI)."""
    session_only, scopes = False, []
    pending = [dependant]
    while pending:
        current = pending.pop()
        for sub in current.dependencies:
            session_only |= sub.call is require_session
            scope = getattr(sub.call, "api_key_scope", None)
            if scope is not None and scope not in scopes:
                scopes.append(scope)
            pending.append(sub)
    return session_only, scopes
