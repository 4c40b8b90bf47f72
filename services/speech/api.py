"""Speech routes: thin wrappers that hand decoding and inference to a worker thread."""

from typing import Annotated, Any

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Depends, File, UploadFile

from services.speech.errors import CORRUPT_DETAIL, MODEL_MISSING_DETAIL, TOO_LONG_DETAIL, UNSUPPORTED_DETAIL
from services.speech.model import SpeechModel
from services.speech.pipeline import ClipResult, finish, prepare_all
from services.speech.schemas import SpeechBatchResponse, SpeechPrediction, SpeechSegment
from services.speech.settings import Settings
from shared.batching import MicroBatcher, get_batcher
from shared.deps import get_model, get_settings
from shared.errors import batch_too_large, error_responses
from shared.labels import LABELS
from shared.schemas import ModelInfo, probabilities_from_vector

ModelDep = Annotated[SpeechModel, Depends(get_model)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
BatcherDep = Annotated[MicroBatcher[Any, Any], Depends(get_batcher)]

ERRORS = error_responses(
    413,
    415,
    422,
    503,
    examples={
        413: (TOO_LONG_DETAIL.format(duration=612.4, limit=600), "audio_too_long"),
        415: (UNSUPPORTED_DETAIL.format(found=" (PNG image)"), "unsupported_media_type"),
        422: (CORRUPT_DETAIL.format(reason="wav: unexpected end of file"), "corrupt_input"),
        503: (MODEL_MISSING_DETAIL.format(reason="loading the model"), "model_not_ready"),
    },
)

router = APIRouter()


def to_response(result: ClipResult, model: SpeechModel) -> SpeechPrediction:
    """Wire shape of a :class:`ClipResult`."""
    segments = [
        SpeechSegment(
            start=round(s.start, 3),
            end=round(s.end, 3),
            label=LABELS[int(s.probabilities.argmax())],
            probabilities={k.value: v for k, v in probabilities_from_vector(s.probabilities.tolist()).items()},
        )
        for s in result.segments
    ]
    return SpeechPrediction(
        label=LABELS[int(result.probabilities.argmax())],
        probabilities=probabilities_from_vector(result.probabilities.tolist()),
        model=ModelInfo(name=model.name, version=model.version),
        duration_s=round(result.duration_s, 3),
        segments=segments,
    )


async def _predict(
    model: SpeechModel, settings: Settings, batcher: BatcherDep, files: list[UploadFile], *, batch: bool
) -> list[SpeechPrediction]:
    """Decode and segment in a worker thread, then classify the windows through the shared micro-batcher."""
    datas = [await f.read() for f in files]
    names = [f.filename or "" for f in files] if batch else None

    prepared = await anyio.to_thread.run_sync(
        lambda: prepare_all(datas, model=model, max_duration_s=settings.max_duration_s, names=names)
    )
    windows = [seg.samples for _, segments in prepared for seg in segments]
    rows = await batcher.submit_many(windows)
    results: list[ClipResult] = finish(prepared, np.asarray(rows, dtype=np.float64).reshape(len(windows), len(LABELS)))
    return [to_response(r, model) for r in results]


@router.post(
    "/predict",
    operation_id="predict_speech",
    summary="Emotion of one audio clip (WAV, FLAC, OGG/Vorbis or MP3)",
    response_model=SpeechPrediction,
    responses=ERRORS,
)
async def predict(
    model: ModelDep,
    settings: SettingsDep,
    batcher: BatcherDep,
    audio: Annotated[UploadFile, File(description="Audio file; the type is detected from its content.")],
) -> SpeechPrediction:
    """Overall probabilities of the clip and a per-window timeline (silence skipped)."""
    (result,) = await _predict(model, settings, batcher, [audio], batch=False)
    return result


@router.post(
    "/predict/batch",
    operation_id="predict_speech_batch",
    summary="Emotion of several audio clips (repeat the `audio` field)",
    response_model=SpeechBatchResponse,
    responses=ERRORS,
)
async def predict_batch(
    model: ModelDep,
    settings: SettingsDep,
    batcher: BatcherDep,
    audio: Annotated[list[UploadFile], File(description="Audio files, one `audio` part each.")],
) -> SpeechBatchResponse:
    """One result per file, in upload order; a bad file fails the batch and is named."""
    if len(audio) > settings.max_batch_size:
        raise batch_too_large(len(audio), settings.max_batch_size, items="files")
    return SpeechBatchResponse(results=await _predict(model, settings, batcher, audio, batch=True))
