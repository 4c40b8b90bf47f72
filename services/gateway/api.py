"""Gateway routes (thin: validation and wiring; the work is in predictions/repository/fanout).

``public_router`` needs no credentials; ``protected_router`` is included with the auth
dependency attached (see app.py), so every route on it has a current user.
"""

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, time
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator

from services.gateway import repository
from services.gateway.auth import create_access_token, generate_api_key, hash_password, verify_password
from services.gateway.deps import (
    CurrentPrincipal,
    CurrentUser,
    FanoutDep,
    SessionDep,
    SettingsDep,
    limit_auth,
)
from services.gateway.errors import (
    API_KEY_NOT_FOUND,
    DUPLICATE_USER,
    INACTIVE_USER,
    INVALID_CREDENTIALS,
    LOGOUT_NEEDS_BEARER,
    NO_INPUT,
    PREDICTION_NOT_FOUND,
    BadRequest,
    Conflict,
    NotFound,
    Unauthorized,
)
from services.gateway.export import csv_lines
from services.gateway.fanout import RequestSpec
from services.gateway.models import utcnow
from services.gateway.predictions import PredictionInput, run_prediction, to_out
from services.gateway.repository import HistoryFilter
from services.gateway.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    DetectMode,
    PredictionOut,
    PredictionPage,
    RegisterRequest,
    ServiceHealth,
    ServicesHealth,
    Statistics,
    TextRequest,
    TokenResponse,
    UserPublic,
)
from services.gateway.settings import Settings
from services.gateway.uploads import AUDIO_TYPES, IMAGE_TYPES, Upload, read_upload
from shared.errors import InvalidInput, error_responses
from shared.labels import Emotion, Modality

public_router = APIRouter()
protected_router = APIRouter(responses=error_responses(401, 429))

CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, one row per prediction"},
    **error_responses(422),
}
#: Errors every prediction endpoint can answer (besides 401/429).
PREDICT_ERRORS = error_responses(413, 415, 422, 502, 503)


# --- auth -------------------------------------------------------------------------------------


@public_router.post(
    "/register",
    operation_id="register",
    tags=["auth"],
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
    tags=["auth"],
    summary="Log in (OAuth2 password flow) and get a bearer token",
    dependencies=[Depends(limit_auth)],
    responses=error_responses(401, 422, 429),
)
async def login(
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=320, description="Username or email.", examples=["alice"])],
    password: Annotated[str, Form(max_length=1024, examples=["correct horse battery"])],
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,  # noqa: ARG001 (OAuth2 form field)
) -> TokenResponse:
    """Form fields ``username`` (or email) and ``password``, as Swagger's Authorize button sends them.

    Unknown users cost the same bcrypt check as known ones, so timing does not reveal accounts.
    """
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
    )
    return TokenResponse(access_token=issued.token, expires_in=issued.expires_in)


@protected_router.post(
    "/logout",
    operation_id="logout",
    tags=["auth"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the bearer token used for this request",
    responses=error_responses(400),
)
async def logout(principal: CurrentPrincipal, session: SessionDep) -> Response:
    """The token is refused from now on, until and after it expires."""
    if principal.token is None:
        raise BadRequest(LOGOUT_NEEDS_BEARER)
    await repository.revoke_token(
        session=session, jti=principal.token.jti, user_id=principal.user.id, expires_at=principal.token.expires_at
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@protected_router.get("/user/profile", operation_id="get_profile", tags=["auth"], summary="The current user")
async def profile(user: CurrentUser) -> UserPublic:
    """The authenticated account."""
    return UserPublic.model_validate(user)


@protected_router.post(
    "/keys",
    operation_id="create_api_key",
    tags=["api keys"],
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (its secret is shown once)",
    responses=error_responses(422),
)
async def create_key(body: ApiKeyCreate, user: CurrentUser, session: SessionDep) -> ApiKeyCreated:
    """Send the returned ``key`` as the ``X-API-Key`` header instead of a bearer token."""
    new = generate_api_key()
    key = await repository.create_api_key(
        session=session, user_id=user.id, name=body.name, prefix=new.prefix, key_hash=new.key_hash
    )
    return ApiKeyCreated.model_validate({**ApiKeyPublic.model_validate(key).model_dump(), "key": new.secret})


@protected_router.get("/keys", operation_id="list_api_keys", tags=["api keys"], summary="List your API keys")
async def list_keys(user: CurrentUser, session: SessionDep) -> list[ApiKeyPublic]:
    """Never includes the secrets."""
    keys = await repository.list_api_keys(session=session, user_id=user.id)
    return [ApiKeyPublic.model_validate(k) for k in keys]


@protected_router.delete(
    "/keys/{key_id}",
    operation_id="revoke_api_key",
    tags=["api keys"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key",
    responses=error_responses(404),
)
async def revoke_key(key_id: int, user: CurrentUser, session: SessionDep) -> Response:
    """The key is refused from now on."""
    if not await repository.revoke_api_key(session=session, user_id=user.id, key_id=key_id):
        raise NotFound(API_KEY_NOT_FOUND)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- predictions ------------------------------------------------------------------------------


def _text_spec(text: str, settings: Settings) -> RequestSpec:
    if len(text) > settings.max_text_chars:
        raise InvalidInput(f"text exceeds {settings.max_text_chars} characters")
    return RequestSpec(json={"text": text})


def _file_spec(upload: Upload, params: dict[str, str] | None = None) -> RequestSpec:
    return RequestSpec(files={upload.field: (upload.filename, upload.content, upload.media_type)}, params=params)


async def _audio(file: UploadFile, settings: Settings) -> Upload:
    return await read_upload(file, field="audio", max_bytes=settings.audio_limit, allowed=AUDIO_TYPES)


async def _image(file: UploadFile, settings: Settings) -> Upload:
    return await read_upload(file, field="image", max_bytes=settings.image_limit, allowed=IMAGE_TYPES)


@protected_router.post(
    "/predict/text",
    operation_id="predict_text",
    tags=["predictions"],
    summary="Emotion of a text",
    responses=error_responses(422, 502, 503),
)
async def predict_text(
    body: TextRequest, user: CurrentUser, session: SessionDep, settings: SettingsDep, fanout: FanoutDep
) -> PredictionOut:
    """Classifies the text with the text service; the result is saved to your history."""
    request = PredictionInput(
        kind="text", specs={Modality.TEXT: _text_spec(body.text, settings)}, text_length=len(body.text)
    )
    return await run_prediction(session=session, fanout=fanout, user_id=user.id, request=request)


@protected_router.post(
    "/predict/speech",
    operation_id="predict_speech",
    tags=["predictions"],
    summary="Emotion of a speech recording (WAV, FLAC, OGG or MP3)",
    responses=PREDICT_ERRORS,
)
async def predict_speech(
    audio: Annotated[UploadFile, File(description="WAV, FLAC, OGG or MP3; checked by content.")],
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    fanout: FanoutDep,
) -> PredictionOut:
    """Silent audio is refused by the speech service (422, code no_speech)."""
    upload = await _audio(audio, settings)
    request = PredictionInput(
        kind="speech", specs={Modality.SPEECH: _file_spec(upload)}, audio_bytes=len(upload.content)
    )
    return await run_prediction(session=session, fanout=fanout, user_id=user.id, request=request)


@protected_router.post(
    "/predict/image",
    operation_id="predict_image",
    tags=["predictions"],
    summary="Emotion of a face image (JPEG, PNG, WebP or BMP)",
    responses=PREDICT_ERRORS,
)
async def predict_image(
    *,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP or BMP; checked by content.")],
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    fanout: FanoutDep,
    detect: Annotated[DetectMode, Query(description="Face detection: auto, always or never.")] = "auto",
) -> PredictionOut:
    """With no face found the result has no label and the message 'No face detected'."""
    upload = await _image(image, settings)
    request = PredictionInput(
        kind="image", specs={Modality.IMAGE: _file_spec(upload, {"detect": detect})}, image_bytes=len(upload.content)
    )
    return await run_prediction(session=session, fanout=fanout, user_id=user.id, request=request)


@protected_router.post(
    "/predict/multimodal",
    operation_id="predict_multimodal",
    tags=["predictions"],
    summary="Fused emotion of any non-empty subset of audio, image and text",
    responses=PREDICT_ERRORS,
)
async def predict_multimodal(
    *,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    fanout: FanoutDep,
    audio: Annotated[UploadFile | None, File(description="Optional speech recording.")] = None,
    image: Annotated[UploadFile | None, File(description="Optional face image.")] = None,
    text: Annotated[str | None, Form(description="Optional text.", examples=["What a lovely surprise!"])] = None,
    detect: Annotated[DetectMode, Query(description="Face detection for the image.")] = "auto",
) -> PredictionOut:
    """The services are called concurrently and their probabilities fused.

    A modality that fails is reported with its error and left out of the fusion; the request
    fails only when none succeeds. If fusion fails, ``fused`` is null and ``fusion_error`` says why.
    """
    specs: dict[Modality, RequestSpec] = {}
    request_meta: dict[str, int] = {}
    if text is not None and text.strip():
        specs[Modality.TEXT] = _text_spec(text, settings)
        request_meta["text_length"] = len(text)
    if audio is not None:
        upload = await _audio(audio, settings)
        specs[Modality.SPEECH] = _file_spec(upload)
        request_meta["audio_bytes"] = len(upload.content)
    if image is not None:
        upload = await _image(image, settings)
        specs[Modality.IMAGE] = _file_spec(upload, {"detect": detect})
        request_meta["image_bytes"] = len(upload.content)
    if not specs:
        raise InvalidInput(NO_INPUT)
    request = PredictionInput(kind="multimodal", specs=specs, **request_meta)
    return await run_prediction(session=session, fanout=fanout, user_id=user.id, request=request)


# --- history ----------------------------------------------------------------------------------

HistoryModality = Literal["speech", "text", "image", "multimodal"]
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_only_means_end_of_day(value: Any) -> Any:
    """``to=2026-11-25`` includes that whole day (pydantic alone would read it as its first instant)."""
    if isinstance(value, str) and _DATE_ONLY.fullmatch(value.strip()):
        return datetime.combine(datetime.fromisoformat(value.strip()).date(), time.max)
    return value


def history_filter(
    modality: Annotated[
        HistoryModality | None, Query(description="Input included this modality (or 'multimodal' requests).")
    ] = None,
    emotion: Annotated[Emotion | None, Query(description="Predicted (fused) label.")] = None,
    date_from: Annotated[
        datetime | None, Query(alias="from", description="ISO 8601, inclusive; a date alone starts at 00:00 UTC.")
    ] = None,
    date_to: Annotated[
        datetime | None,
        BeforeValidator(_date_only_means_end_of_day),
        Query(alias="to", description="ISO 8601, inclusive; a date alone includes that whole day (UTC)."),
    ] = None,
) -> HistoryFilter:
    """Query parameters shared by the history, statistics and export."""
    if date_from is not None and date_from.tzinfo is None:
        date_from = date_from.replace(tzinfo=utcnow().tzinfo)
    if date_to is not None and date_to.tzinfo is None:
        date_to = date_to.replace(tzinfo=utcnow().tzinfo)
    if date_from and date_to and date_from > date_to:
        raise InvalidInput("'from' must not be after 'to'")
    return HistoryFilter(
        modality=modality, emotion=str(emotion) if emotion else None, date_from=date_from, date_to=date_to
    )


FilterDep = Annotated[HistoryFilter, Depends(history_filter)]


@protected_router.get(
    "/predictions",
    operation_id="list_predictions",
    tags=["history"],
    summary="Your predictions, newest first",
    responses=error_responses(422),
)
async def list_predictions(
    user: CurrentUser,
    session: SessionDep,
    filters: FilterDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> PredictionPage:
    """Paginated with limit/offset; ``total`` counts every match."""
    rows, total = await repository.list_predictions(
        session=session, user_id=user.id, filters=filters, limit=limit, offset=offset
    )
    return PredictionPage(items=[to_out(r) for r in rows], total=total, limit=limit, offset=offset)


# Declared before /predictions/{prediction_id} so "export.csv" is not taken for an id.
@protected_router.get(
    "/predictions/export.csv",
    operation_id="export_predictions_csv",
    tags=["history"],
    summary="Download your history as CSV",
    response_class=StreamingResponse,
    responses=CSV_RESPONSES,
)
async def export_csv(
    request: Request, user: CurrentUser, settings: SettingsDep, filters: FilterDep
) -> StreamingResponse:
    """Streams rows as they are read; text cells that look like formulas are quoted."""
    sessionmaker = request.app.state.sessionmaker
    user_id = user.id

    async def body() -> AsyncIterator[str]:
        # Its own session: the request's may be closed before the stream ends.
        async with sessionmaker() as session:
            rows = repository.stream_predictions(
                session=session, user_id=user_id, filters=filters, max_rows=settings.export_max_rows
            )
            async for line in csv_lines(rows):
                yield line

    stamp = utcnow().strftime("%Y%m%d")
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="predictions-{stamp}.csv"'},
    )


@protected_router.get(
    "/predictions/{prediction_id}",
    operation_id="get_prediction",
    tags=["history"],
    summary="One of your predictions",
    responses=error_responses(404),
)
async def get_prediction(prediction_id: int, user: CurrentUser, session: SessionDep) -> PredictionOut:
    """Someone else's prediction answers 404, exactly like a missing one."""
    row = await repository.get_prediction(session=session, user_id=user.id, prediction_id=prediction_id)
    if row is None:
        raise NotFound(PREDICTION_NOT_FOUND)
    return to_out(row)


@protected_router.delete(
    "/predictions/{prediction_id}",
    operation_id="delete_prediction",
    tags=["history"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one of your predictions",
    responses=error_responses(404),
)
async def delete_prediction(prediction_id: int, user: CurrentUser, session: SessionDep) -> Response:
    """Someone else's prediction answers 404, exactly like a missing one."""
    if not await repository.delete_prediction(session=session, user_id=user.id, prediction_id=prediction_id):
        raise NotFound(PREDICTION_NOT_FOUND)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@protected_router.get(
    "/statistics",
    operation_id="get_statistics",
    tags=["history"],
    summary="Counts per emotion, per modality and per day",
    responses=error_responses(422),
)
async def get_statistics(user: CurrentUser, session: SessionDep, filters: FilterDep) -> Statistics:
    """Over your whole history, or the filtered part of it."""
    return Statistics.model_validate(await repository.statistics(session=session, user_id=user.id, filters=filters))


# --- downstream health ------------------------------------------------------------------------


@public_router.get(
    "/health/services",
    operation_id="services_health",
    tags=["health"],
    summary="Readiness of the inference and fusion services",
    responses=error_responses(429),
)
async def services_health(request: Request, settings: SettingsDep) -> ServicesHealth:
    """Each service's /readyz, asked concurrently (the gateway's own /readyz covers only its DB)."""
    client: httpx.AsyncClient = request.app.state.http_client
    names = [*(str(m) for m in Modality), "fusion"]

    async def check(name: str) -> ServiceHealth:
        url = settings.service_url(name)
        try:
            response = await client.get(f"{url}/readyz", timeout=settings.health_timeout_s)
        except httpx.HTTPError as exc:
            return ServiceHealth(status="unreachable", url=url, detail=type(exc).__name__)
        if response.status_code == 200:
            return ServiceHealth(status="ready", url=url)
        try:
            detail = str(response.json().get("detail"))
        except (ValueError, AttributeError):
            detail = f"HTTP {response.status_code}"
        return ServiceHealth(status="not_ready", url=url, detail=detail)

    results = await asyncio.gather(*(check(n) for n in names))
    return ServicesHealth(services=dict(zip(names, results, strict=True)))
