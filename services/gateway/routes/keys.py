"""API keys: credentials for backend clients (X-API-Key)."""

import re
from datetime import datetime
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.gateway import repository
from services.gateway.auth import API_KEY_SCOPES, DEFAULT_NEW_KEY_SCOPES, MAX_ID, generate_api_key
from services.gateway.bodylimits import JsonLimitedRoute
from services.gateway.deps import CurrentUser, SessionDep
from services.gateway.errors import API_KEY_NOT_FOUND, NotFound
from shared.errors import error_responses

#: Included with the auth dependency and require_session attached (see app.py): keys cannot mint keys.
router = APIRouter(
    route_class=JsonLimitedRoute, prefix="/keys", tags=["api keys"], responses=error_responses(401, 403, 429)
)

Scope = Literal["predict", "history:read", "history:write"]


class ApiKeyCreate(BaseModel):
    """A new API key for a backend client."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "batch-importer", "scopes": ["predict"]}]}
    )

    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(
        default_factory=lambda: cast(list[Scope], list(DEFAULT_NEW_KEY_SCOPES)),
        min_length=1,
        max_length=len(API_KEY_SCOPES),
        description="What the key may do: "
        + "; ".join(f"`{name}`: {text}" for name, text in API_KEY_SCOPES.items())
        + f" Default: {', '.join(DEFAULT_NEW_KEY_SCOPES)}. No key can manage keys.",
    )

    @field_validator("scopes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value), key=list(API_KEY_SCOPES).index)

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value or re.search(r"[\x00-\x1f]", value):
            raise ValueError("name must be printable and not blank")
        return value


class ApiKeyPublic(BaseModel):
    """An API key without its secret."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "name": "batch-importer",
                    "prefix": "emo_AbCdEfGh",
                    "scopes": ["predict", "history:read"],
                    "created_at": "2026-11-25T12:00:00Z",
                    "last_used_at": None,
                    "revoked_at": None,
                }
            ]
        },
    )

    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @field_validator("scopes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return value.split() if isinstance(value, str) else value


class ApiKeyCreated(ApiKeyPublic):
    """A created API key: ``key`` is shown this once and cannot be retrieved later."""

    key: str = Field(description="Send as the X-API-Key header. Store it now: it is not shown again.")


@router.post(
    "",
    operation_id="create_api_key",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (its secret is shown once)",
    responses=error_responses(422),
)
async def create_key(body: ApiKeyCreate, user: CurrentUser, session: SessionDep) -> ApiKeyCreated:
    """Send the returned ``key`` as the ``X-API-Key`` header instead of a bearer token."""
    new = generate_api_key()
    key = await repository.create_api_key(
        session=session,
        user_id=user.id,
        name=body.name,
        prefix=new.prefix,
        key_hash=new.key_hash,
        scopes=list(body.scopes),
    )
    return ApiKeyCreated.model_validate({**ApiKeyPublic.model_validate(key).model_dump(), "key": new.secret})


@router.get("", operation_id="list_api_keys", summary="List your API keys")
async def list_keys(user: CurrentUser, session: SessionDep) -> list[ApiKeyPublic]:
    """Never includes the secrets."""
    keys = await repository.list_api_keys(session=session, user_id=user.id)
    return [ApiKeyPublic.model_validate(k) for k in keys]


@router.delete(
    "/{key_id:int}",
    operation_id="revoke_api_key",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    responses=error_responses(404),
)
async def revoke_key(key_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, session: SessionDep) -> Response:
    """The key is refused from now on."""
    if not await repository.revoke_api_key(session=session, user_id=user.id, key_id=key_id):
        raise NotFound(API_KEY_NOT_FOUND)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
