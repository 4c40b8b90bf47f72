"""Predictions: one modality, or any mix of them fused; each is saved to the caller's history."""

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.gateway.bodylimits import JsonLimitedRoute
from services.gateway.deps import CurrentUser, FanoutDep, SessionDep, SettingsDep
from services.gateway.errors import NO_INPUT
from services.gateway.fanout import RequestSpec
from services.gateway.predictions import PredictionInput, run_prediction
from services.gateway.schemas import PredictionOut
from services.gateway.settings import Settings
from services.gateway.uploads import AUDIO_TYPES, IMAGE_TYPES, Upload, read_upload
from shared.errors import InvalidInput, error_responses
from shared.labels import Modality

#: Included with the auth dependency attached (see app.py).
router = APIRouter(
    route_class=JsonLimitedRoute, prefix="/predict", tags=["predictions"], responses=error_responses(401, 403, 429)
)

#: Errors every prediction endpoint with uploads can answer (besides 401/429).
PREDICT_ERRORS = error_responses(413, 415, 422, 502, 503)
DetectMode = Literal["auto", "always", "never"]


class TextRequest(BaseModel):
    """Text to classify."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "I can't believe we won the final!"}]}
    )

    text: str = Field(min_length=1, description="The text; longer than MAX_TEXT_CHARS is refused (422).")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be blank")
        return value


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


@router.post(
    "/text",
    operation_id="predict_text",
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


@router.post(
    "/speech",
    operation_id="predict_speech",
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


@router.post(
    "/image",
    operation_id="predict_image",
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


@router.post(
    "/multimodal",
    operation_id="predict_multimodal",
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
