"""Speech routes: thin wrappers that hand decoding and inference to a worker thread."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from services.speech.errors import MODEL_MISSING_DETAIL
from services.speech.model import SpeechModel
from services.speech.pipeline import ClipResult, analyse
from services.speech.settings import Settings
from shared.errors import InvalidInput, ModelNotReady, error_responses
from shared.labels import LABELS
from shared.schemas import EXAMPLE_PROBABILITIES, ModelInfo, Prediction, probabilities_from_vector
from shared.service import run_inference

EXAMPLE_SEGMENT: dict[str, Any] = {"start": 0.4, "end": 3.4, "label": "happy", "probabilities": EXAMPLE_PROBABILITIES}


class SpeechSegment(BaseModel):
    """One window of the clip and its own prediction."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_SEGMENT]})

    start: float = Field(description="Start of the window, in seconds from the beginning of the clip.")
    end: float = Field(description="End of the window, in seconds.")
    label: str = Field(description="Most probable emotion in this window.")
    probabilities: dict[str, float]


class SpeechPrediction(Prediction):
    """The clip's overall prediction (duration-weighted over speech windows) and its timeline."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "label": "happy",
                    "probabilities": EXAMPLE_PROBABILITIES,
                    "model": {"name": "speech-emotion-dnn", "version": "2026.11.25"},
                    "duration_s": 3.6,
                    "segments": [EXAMPLE_SEGMENT],
                }
            ]
        }
    )

    duration_s: float = Field(description="Length of the decoded clip, in seconds.")
    segments: list[SpeechSegment] = Field(description="Speech windows in time order; silence is skipped.")


class SpeechBatchResponse(BaseModel):
    """One result per uploaded file, in upload order."""

    results: list[SpeechPrediction]


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


def _model(request: Request) -> SpeechModel:
    model: SpeechModel | None = getattr(request.app.state, "model", None)
    if model is None:
        raise ModelNotReady(MODEL_MISSING_DETAIL.format(reason=request.app.state.not_ready_reason))
    return model


async def _predict(request: Request, files: list[UploadFile], *, batch: bool) -> list[SpeechPrediction]:
    settings: Settings = request.app.state.settings
    model = _model(request)
    datas = [await f.read() for f in files]
    names = [f.filename or "" for f in files] if batch else None

    def run(clips: list[bytes]) -> list[ClipResult]:
        return analyse(clips, model=model, max_duration_s=settings.max_duration_s, names=names)

    results = await run_inference(request.app.state.metrics, run, datas)
    return [to_response(r, model) for r in results]


def build_router() -> APIRouter:
    """The /predict routes."""
    router = APIRouter(tags=["speech"])

    @router.post(
        "/predict",
        operation_id="predictSpeech",
        summary="Emotion of one audio clip (WAV, FLAC, OGG/Vorbis or MP3)",
        response_model=SpeechPrediction,
        responses=error_responses(413, 415, 422, 503),
    )
    async def predict(
        request: Request,
        audio: Annotated[UploadFile, File(description="Audio file; the type is detected from its content.")],
    ) -> SpeechPrediction:
        (result,) = await _predict(request, [audio], batch=False)
        return result

    @router.post(
        "/predict/batch",
        operation_id="predictSpeechBatch",
        summary="Emotion of several audio clips (repeat the `audio` field)",
        response_model=SpeechBatchResponse,
        responses=error_responses(413, 415, 422, 503),
    )
    async def predict_batch(
        request: Request,
        audio: Annotated[list[UploadFile], File(description="Audio files, one `audio` part each.")],
    ) -> SpeechBatchResponse:
        settings: Settings = request.app.state.settings
        if len(audio) > settings.max_batch_size:
            raise InvalidInput(f"Too many files: {len(audio)} given, at most {settings.max_batch_size} per batch")
        return SpeechBatchResponse(results=await _predict(request, audio, batch=True))

    return router
