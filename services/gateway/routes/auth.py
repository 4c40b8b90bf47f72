"""Accounts: register and log in (public), log out and profile (a signed-in user)."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request, Response, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from services.gateway import repository
from services.gateway.auth import BCRYPT_MAX_BYTES, create_access_token, hash_password, verify_password
from services.gateway.bodylimits import JsonLimitedRoute
from services.gateway.deps import CurrentPrincipal, CurrentUser, SessionDep, SettingsDep, limit_auth
from services.gateway.errors import (
    DUPLICATE_USER,
    INACTIVE_USER,
    INVALID_CREDENTIALS,
    Conflict,
    Unauthorized,
)
from shared.errors import InvalidInput, error_responses

MIN_PASSWORD_LENGTH = 8
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"

INVALID_GRANT_TYPE = "grant_type must be 'password'"
#: Token responses must not be stored by browsers or proxies (RFC 6749 section 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

#: Register and log in: no credentials.
public_router = APIRouter(route_class=JsonLimitedRoute, tags=["auth"])
#: The profile: included with the auth dependency attached (see app.py); API keys may read it.
router = APIRouter(route_class=JsonLimitedRoute, tags=["auth"], responses=error_responses(401, 429))
#: Logging out: included with the auth dependency and require_session attached (see app.py).
session_router = APIRouter(route_class=JsonLimitedRoute, tags=["auth"], responses=error_responses(401, 403, 429))


class RegisterRequest(BaseModel):
    """A new account."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"username": "alice", "email": "alice@example.com", "password": "correct horse battery"}]
        },
    )

    username: str = Field(
        pattern=USERNAME_PATTERN, description="3-64 characters: letters, digits, '_', '.', '-'; starts alphanumeric."
    )
    email: EmailStr
    password: str = Field(
        min_length=MIN_PASSWORD_LENGTH,
        description=f"At least {MIN_PASSWORD_LENGTH} characters and at most {BCRYPT_MAX_BYTES} bytes (UTF-8).",
    )

    @field_validator("password")
    @classmethod
    def _bcrypt_limit(cls, value: str) -> str:
        if len(value.encode()) > BCRYPT_MAX_BYTES:
            raise ValueError(f"password must be at most {BCRYPT_MAX_BYTES} bytes (UTF-8)")
        if not value.strip():
            raise ValueError("password must not be blank")
        return value

    @field_validator("username", "email")
    @classmethod
    def _lower(cls, value: str) -> str:
        # Stored lower-case: MySQL compares case-insensitively, SQLite does not.
        return value.lower()


class UserPublic(BaseModel):
    """An account as its owner sees it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {"id": 1, "username": "alice", "email": "alice@example.com", "created_at": "2026-11-25T12:00:00Z"}
            ]
        },
    )

    id: int
    username: str
    email: str
    created_at: datetime


class TokenResponse(BaseModel):
    """An OAuth2 bearer token."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"access_token": "eyJhbGciOi...", "token_type": "bearer", "expires_in": 3600}]}
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


@public_router.post(
    "/register",
    operation_id="register",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    dependencies=[Depends(limit_auth)],
    responses=error_responses(409, 422, 429),
)
async def register(body: RegisterRequest, session: SessionDep, settings: SettingsDep) -> UserPublic:
    """Register with a username, an email and a password (8+ characters, at most 72 bytes)."""
    if await repository.user_exists(session=session, username=body.username, email=body.email):
        raise Conflict(DUPLICATE_USER)
    password_hash = await hash_password(body.password, rounds=settings.bcrypt_rounds)
    user = await repository.create_user(
        session=session, username=body.username, email=body.email, password_hash=password_hash
    )
    return UserPublic.model_validate(user)


@public_router.post(
    "/login",
    operation_id="login",
    summary="Log in (OAuth2 password flow) and get a bearer token",
    dependencies=[Depends(limit_auth)],
    responses=error_responses(401, 422, 429),
)
async def login(  # noqa: PLR0917 (FastAPI passes parameters by name)
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=320, description="Username or email.", examples=["alice"])],
    password: Annotated[str, Form(max_length=1024, examples=["correct horse battery"])],
    grant_type: Annotated[  # noqa: ARG001 (checked on the raw form below)
        str | None, Form(pattern="^password$", description="Optional; if sent, it must be `password`.")
    ] = None,
) -> TokenResponse:
    """Form fields ``username`` (or email) and ``password``, as Swagger's Authorize button sends them.

    Unknown users cost the same bcrypt check as known ones, so timing does not reveal accounts.
    The response is never cached (``Cache-Control: no-store``, RFC 6749 section 5.1).
    """
    # FastAPI reads an empty form field as absent; OAuth2 wants `grant_type=` refused.
    form = await request.form()  # already parsed for the fields above: cached, no second read
    if "grant_type" in form and form.get("grant_type") != "password":
        raise InvalidInput(INVALID_GRANT_TYPE)
    response.headers.update(NO_STORE)
    user = await repository.find_user_for_login(session=session, login=username)
    valid = await verify_password(password, user.password_hash if user else None, rounds=settings.bcrypt_rounds)
    if user is None or not valid:
        raise Unauthorized(INVALID_CREDENTIALS)
    if not user.is_active:
        raise Unauthorized(INACTIVE_USER)
    issued = create_access_token(
        user_id=user.id,
        secret=settings.secret_key.get_secret_value(),
        expires_minutes=settings.access_token_expire_minutes,
        version=user.token_version,
    )
    return TokenResponse(access_token=issued.token, expires_in=issued.expires_in)


@session_router.post(
    "/logout",
    operation_id="logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the bearer token used for this request",
)
async def logout(principal: CurrentPrincipal, session: SessionDep) -> Response:
    """The token is refused from now on, until and after it expires. API keys cannot log out (403)."""
    assert principal.token is not None  # require_session is attached to this router
    await repository.revoke_token(
        session=session, jti=principal.token.jti, user_id=principal.user.id, expires_at=principal.token.expires_at
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@session_router.post(
    "/logout/all",
    operation_id="logout_everywhere",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out everywhere: revoke every bearer token issued to you so far",
)
async def logout_everywhere(user: CurrentUser, session: SessionDep) -> Response:
    """Every token issued before this call is refused (API keys are not affected: revoke those one by one)."""
    await repository.log_out_everywhere(session=session, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/user/profile", operation_id="get_profile", summary="The current user")
async def profile(user: CurrentUser) -> UserPublic:
    """The authenticated account (readable with an API key of any scope; there is nothing to change here)."""
    return UserPublic.model_validate(user)
