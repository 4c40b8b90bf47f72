"""HTTP routes of the text service: thin wrappers over :mod:`services.text.inputs`."""

from typing import Annotated

from fastapi import APIRouter, Depends

from services.text.errors import EMPTY_TEXT, MODEL_NOT_LOADED
from services.text.inputs import prepare_text
from services.text.schemas import BatchTextRequest, BatchTextResponse, TextPrediction, TextRequest
from services.text.settings import Settings
from shared.batching import MicroBatcher, get_batcher
from shared.deps import get_settings
from shared.errors import batch_too_large, error_responses

SettingsDep = Annotated[Settings, Depends(get_settings)]
BatcherDep = Annotated[MicroBatcher[str, TextPrediction], Depends(get_batcher)]

ERRORS = error_responses(
    413,
    422,
    503,
    examples={
        422: (EMPTY_TEXT, "empty_text"),
        503: (MODEL_NOT_LOADED.format(reason="loading the model"), "model_not_ready"),
    },
)

router = APIRouter()


@router.post(
    "/predict",
    operation_id="predict_text",
    summary="Emotion of one text",
    response_model=TextPrediction,
    responses=ERRORS,
)
async def predict(body: TextRequest, settings: SettingsDep, batcher: BatcherDep) -> TextPrediction:
    """Seven probabilities and the top label for ``text`` (empty, over-long or non-Unicode text: 422)."""
    text = prepare_text(body.text, max_chars=settings.max_text_chars)
    return await batcher.submit(text)


@router.post(
    "/predict/batch",
    operation_id="predict_text_batch",
    summary="Emotions of several texts in one model call",
    response_model=BatchTextResponse,
    responses=ERRORS,
)
async def predict_batch(body: BatchTextRequest, settings: SettingsDep, batcher: BatcherDep) -> BatchTextResponse:
    """One prediction per text, in order; the whole batch is rejected if any text is invalid."""
    if len(body.texts) > settings.max_batch_size:
        raise batch_too_large(len(body.texts), settings.max_batch_size, items="texts")
    texts = [
        prepare_text(text, max_chars=settings.max_text_chars, where=f"texts[{i}]") for i, text in enumerate(body.texts)
    ]
    return BatchTextResponse(results=await batcher.submit_many(texts))
