"""HTTP routes of the text service: thin wrappers over :mod:`services.text.inputs`."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.text.errors import BATCH_TOO_LARGE, MODEL_NOT_LOADED, BatchTooLarge
from services.text.inputs import predict_texts, prepare_text
from services.text.model import TextModel
from services.text.schemas import BatchTextRequest, BatchTextResponse, TextPrediction, TextRequest
from services.text.settings import Settings
from shared.errors import ModelNotReady, error_responses
from shared.service import run_inference

router = APIRouter(tags=["inference"])


def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_model(request: Request) -> TextModel:
    """The loaded model, or 503 with the reason it is not there."""
    model: TextModel | None = getattr(request.app.state, "model", None)
    if model is None:
        raise ModelNotReady(MODEL_NOT_LOADED.format(reason=request.app.state.not_ready_reason))
    return model


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ModelDep = Annotated[TextModel, Depends(get_model)]


@router.post(
    "/predict",
    operation_id="predict_text",
    summary="Emotion of one text",
    response_model=TextPrediction,
    responses=error_responses(413, 422, 503),
)
async def predict(body: TextRequest, request: Request, model: ModelDep, settings: SettingsDep) -> TextPrediction:
    """Seven probabilities and the top label for ``text`` (empty or over-long text: 422)."""
    text = prepare_text(body.text, max_chars=settings.max_text_chars)
    results = await run_inference(request.app.state.metrics, lambda batch: predict_texts(model, batch), [text])
    return results[0]


@router.post(
    "/predict/batch",
    operation_id="predict_text_batch",
    summary="Emotions of several texts in one model call",
    response_model=BatchTextResponse,
    responses=error_responses(413, 422, 503),
)
async def predict_batch(
    body: BatchTextRequest, request: Request, model: ModelDep, settings: SettingsDep
) -> BatchTextResponse:
    """One prediction per text, in order; the whole batch is rejected if any text is invalid."""
    if len(body.texts) > settings.max_batch_size:
        raise BatchTooLarge(BATCH_TOO_LARGE.format(size=len(body.texts), limit=settings.max_batch_size))
    texts = [
        prepare_text(text, max_chars=settings.max_text_chars, where=f"texts[{i}]") for i, text in enumerate(body.texts)
    ]
    results = await run_inference(request.app.state.metrics, lambda batch: predict_texts(model, batch), texts)
    return BatchTextResponse(results=results)
