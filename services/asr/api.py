"""``POST /transcribe``: decoding and the model call both run in a worker thread."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile

from services.asr.audio import decode
from services.asr.errors import EMPTY_DETAIL, MODEL_MISSING_DETAIL, TOO_LONG_DETAIL, UNSUPPORTED_DETAIL
from services.asr.model import AsrModel, Transcript
from services.asr.settings import Settings
from shared.deps import MetricsDep, get_model, get_settings
from shared.errors import error_responses
from shared.schemas import ModelInfo, Transcription, TranscriptSegment
from shared.service import run_inference

ModelDep = Annotated[AsrModel, Depends(get_model)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

ERRORS = error_responses(
    413,
    415,
    422,
    503,
    examples={
        413: (TOO_LONG_DETAIL.format(duration=754.2, limit=600), "audio_too_long"),
        415: (UNSUPPORTED_DETAIL, "unsupported_media_type"),
        422: (EMPTY_DETAIL, "empty_audio"),
        503: (MODEL_MISSING_DETAIL.format(reason="loading the model"), "model_not_ready"),
    },
)

router = APIRouter()


def to_response(transcript: Transcript, model: AsrModel) -> Transcription:
    """Wire shape of a :class:`Transcript`."""
    return Transcription(
        language=transcript.language,
        duration_s=round(transcript.duration_s, 3),
        text=transcript.text,
        segments=[TranscriptSegment(start=s.start, end=s.end, text=s.text) for s in transcript.segments],
        model=ModelInfo(name=model.name, version=model.version),
    )


@router.post(
    "/transcribe",
    operation_id="transcribe",
    summary="Timed transcript of one audio clip (WAV, FLAC, OGG/Vorbis or MP3)",
    response_model=Transcription,
    responses=ERRORS,
)
async def transcribe(
    model: ModelDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    audio: Annotated[UploadFile, File(description="Audio file; the type is detected from its content.")],
) -> Transcription:
    """Language, segments ``[{start, end, text}]`` and the model; silence gives no segments (not an error)."""
    data = await audio.read()

    def run(batch: list[bytes]) -> list[Transcript]:
        return model.transcribe([decode(item, max_duration_s=settings.max_duration_s) for item in batch])

    (transcript,) = await run_inference(metrics, run, [data])
    return to_response(transcript, model)
