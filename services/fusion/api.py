"""HTTP routes of the fusion service: ``POST /fuse``."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from services.fusion.errors import MODEL_NOT_READY, NO_MODALITIES
from services.fusion.model import FusionModel
from shared.batching import MicroBatcher, get_batcher
from shared.deps import get_model
from shared.errors import InvalidInput, error_responses
from shared.labels import LABELS, Emotion
from shared.schemas import (
    EXAMPLE_PROBABILITIES,
    FuseRequest,
    FuseResponse,
    ModelInfo,
    probabilities_from_vector,
    vector_from_probabilities,
)

ModelDep = Annotated[FusionModel, Depends(get_model)]
BatcherDep = Annotated[MicroBatcher[dict[str, Any], Any], Depends(get_batcher)]

router = APIRouter()

_SAD = {"angry": 0.05, "disgust": 0.02, "fear": 0.08, "happy": 0.03, "sad": 0.7, "surprise": 0.02, "neutral": 0.1}
FUSE_EXAMPLES: dict[str, Any] = {
    "all": {
        "summary": "All three modalities",
        "value": {"speech": _SAD, "text": EXAMPLE_PROBABILITIES, "image": EXAMPLE_PROBABILITIES},
    },
    "text_image": {"summary": "Text and face only", "value": {"text": EXAMPLE_PROBABILITIES, "image": _SAD}},
    "speech": {"summary": "Speech only", "value": {"speech": _SAD}},
}


@router.post(
    "/fuse",
    operation_id="fuse",
    summary="Fuse per-modality probabilities into one prediction",
    description=(
        "Takes the seven-label probability vectors of any non-empty subset of speech, text and image "
        "(each non-negative, summing to 1; the services already return calibrated probabilities) and returns "
        "calibrated fused probabilities. One modality comes back exactly as given. Two or more: the Random "
        "Forest's output blended with the product of the given vectors by a weight fitted per modality subset, "
        "then a temperature per subset fitted out of fold, softened by the correlation guard (modalities of one "
        "person are not independent evidence; see the model card)."
    ),
    response_model=FuseResponse,
    responses=error_responses(
        422,
        503,
        examples={
            422: (NO_MODALITIES, "invalid_input"),
            503: (f"{MODEL_NOT_READY}: loading the model", "model_not_ready"),
        },
    ),
)
async def fuse(
    model: ModelDep,
    batcher: BatcherDep,
    body: Annotated[FuseRequest, Body(openapi_examples=FUSE_EXAMPLES)],
) -> FuseResponse:
    """The fused probabilities of the given modalities (none given: 422)."""
    present = body.present()
    if not present:
        raise InvalidInput(NO_MODALITIES)
    item = {str(m): vector_from_probabilities(p) for m, p in present.items()}
    vector = await batcher.submit(item)
    return FuseResponse(
        label=Emotion(LABELS[int(vector.argmax())]),
        probabilities=probabilities_from_vector(vector.tolist()),
        modalities=list(present),
        model=ModelInfo(name=model.name, version=model.version),
    )
