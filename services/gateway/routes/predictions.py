"""Predictions: one modality, or any mix of them fused; each is saved to the caller's history."""

import functools
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.gateway.bodylimits import JsonLimitedRoute
from services.gateway.deps import CurrentUser, FanoutDep, SettingsDep, WriterDep
from services.gateway.errors import NO_INPUT
from services.gateway.fanout import RequestSpec, all_failed
from services.gateway.predictions import PredictionInput, run_prediction, save_video
from services.gateway.recording import VideoOptions, analyse_video
from services.gateway.schemas import PredictionOut
from services.gateway.settings import Settings
from services.gateway.uploads import AUDIO_TYPES, IMAGE_TYPES, Upload, read_upload
from services.gateway.video import VIDEO_FORMATS, decode_video, read_video, sample_rate_for
from shared.errors import InvalidInput, error_responses
from shared.labels import Modality

#: Included with the auth dependency attached (see app.py).
router = APIRouter(
    route_class=JsonLimitedRoute, prefix="/predict", tags=["predictions"], responses=error_responses(401, 403, 429)
)

#: Errors every prediction endpoint with uploads can answer (besides 401/429).
PREDICT_ERRORS = error_responses(413, 415, 422, 502, 503)
DetectMode = Literal["auto", "always", "never"]
TranscribeParam = Annotated[
    bool, Query(description="Also transcribe the audio: the transcript becomes the text modality and is fused.")
]


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
    body: TextRequest, user: CurrentUser, writer: WriterDep, settings: SettingsDep, fanout: FanoutDep
) -> PredictionOut:
    """Classifies the text with the text service; the result is saved to your history."""
    request = PredictionInput(
        kind="text", specs={Modality.TEXT: _text_spec(body.text, settings)}, text_length=len(body.text)
    )
    return await run_prediction(writer=writer, fanout=fanout, user_id=user.id, request=request)


@router.post(
    "/speech",
    operation_id="predict_speech",
    summary="Emotion of a speech recording (WAV, FLAC, OGG or MP3)",
    responses=PREDICT_ERRORS,
)
async def predict_speech(
    *,
    audio: Annotated[UploadFile, File(description="WAV, FLAC, OGG or MP3; checked by content.")],
    user: CurrentUser,
    writer: WriterDep,
    settings: SettingsDep,
    fanout: FanoutDep,
    transcribe: TranscribeParam = False,
) -> PredictionOut:
    """Silent audio is refused by the speech service (422, code no_speech).

    With ``transcribe=true`` the clip is also transcribed; the transcript is read by the text
    service and fused with the speech result (``label`` is then the fused one; ``transcript`` shows it).
    """
    upload = await _audio(audio, settings)
    request = PredictionInput(
        kind="speech",
        specs={Modality.SPEECH: _file_spec(upload)},
        audio_bytes=len(upload.content),
        transcribe=transcribe,
    )
    return await run_prediction(writer=writer, fanout=fanout, user_id=user.id, request=request)


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
    writer: WriterDep,
    settings: SettingsDep,
    fanout: FanoutDep,
    detect: Annotated[DetectMode, Query(description="Face detection: auto, always or never.")] = "auto",
) -> PredictionOut:
    """With no face found the result has no label and the message 'No face detected'."""
    upload = await _image(image, settings)
    request = PredictionInput(
        kind="image", specs={Modality.IMAGE: _file_spec(upload, {"detect": detect})}, image_bytes=len(upload.content)
    )
    return await run_prediction(writer=writer, fanout=fanout, user_id=user.id, request=request)


@router.post(
    "/multimodal",
    operation_id="predict_multimodal",
    summary="Fused emotion of any non-empty subset of audio, image and text",
    responses=PREDICT_ERRORS,
)
async def predict_multimodal(
    *,
    user: CurrentUser,
    writer: WriterDep,
    settings: SettingsDep,
    fanout: FanoutDep,
    audio: Annotated[UploadFile | None, File(description="Optional speech recording.")] = None,
    image: Annotated[UploadFile | None, File(description="Optional face image.")] = None,
    text: Annotated[str | None, Form(description="Optional text.", examples=["What a lovely surprise!"])] = None,
    detect: Annotated[DetectMode, Query(description="Face detection for the image.")] = "auto",
    transcribe: TranscribeParam = False,
) -> PredictionOut:
    """The services are called concurrently and their probabilities fused.

    With ``transcribe=true`` and ``audio`` but no ``text``, the audio's transcript is the text modality.

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
    request = PredictionInput(
        kind="multimodal",
        specs=specs,
        transcribe=transcribe and Modality.TEXT not in specs and Modality.SPEECH in specs,
        **request_meta,
    )
    return await run_prediction(writer=writer, fanout=fanout, user_id=user.id, request=request)


VIDEO_DESCRIPTION = f"""Sends a recording through every modality and answers with a timeline.

The container ({", ".join(f.name for f in VIDEO_FORMATS)}) is recognised by content and decoded in a
worker thread. The sound track goes to the speech service (prosody, per segment) and to the
transcription service, whose segments the text service reads; frames sampled at ``frame_rate`` per
second go to the image service in batches. The recording is cut into windows of ``window_s``
seconds; each window is fused over the modalities present in it, and the overall result is the
fused windows' mean weighted by their duration. A video without sound, or without a face in any
frame, still answers with what it has and lists what was missing in ``timeline.missing``. Longer
than ``MAX_VIDEO_DURATION_S`` (from the header): 413; not a supported container: 415; corrupt: 422.
"""


@router.post(
    "/video",
    operation_id="predict_video",
    summary="Emotion timeline of a video: face, voice and words",
    description=VIDEO_DESCRIPTION,
    responses=PREDICT_ERRORS,
)
async def predict_video(
    *,
    video: Annotated[UploadFile, File(description="MP4/H.264, WebM, MOV, MKV or FLV; checked by content.")],
    user: CurrentUser,
    writer: WriterDep,
    settings: SettingsDep,
    fanout: FanoutDep,
    frame_rate: Annotated[
        float | None, Query(gt=0, le=30, description="Frames sampled per second (default VIDEO_FRAME_RATE).")
    ] = None,
    window_s: Annotated[
        float | None, Query(ge=0.5, le=60, description="Timeline window in seconds (default VIDEO_WINDOW_S).")
    ] = None,
) -> PredictionOut:
    """The result's ``timeline`` has every window; ``transcript`` the words; history keeps labels only."""
    content = await read_video(video, max_bytes=settings.video_limit)
    rate = frame_rate or settings.video_frame_rate
    decoded = await anyio.to_thread.run_sync(
        functools.partial(
            decode_video,
            content,
            max_duration_s=settings.max_video_duration_s,
            frame_rate=rate,
            max_frames=settings.video_max_frames,
        )
    )
    options = VideoOptions(
        frame_rate=sample_rate_for(decoded.duration_s, frame_rate=rate, max_frames=settings.video_max_frames),
        window_s=window_s or settings.video_window_s,
        max_windows=settings.video_max_windows,
        image_batch_size=settings.video_image_batch,
        concurrency=settings.video_concurrency,
    )
    analysis = await analyse_video(fanout=fanout, video=decoded, options=options)
    if analysis.outcomes and not any(o.ok for o in analysis.outcomes.values()):
        raise all_failed(analysis.outcomes)
    return await save_video(writer=writer, user_id=user.id, video=decoded, analysis=analysis, video_bytes=len(content))
