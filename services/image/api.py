"""Routes: ``/predict`` (one image) and ``/predict/batch`` (repeated ``image`` parts)."""

from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Depends, File, Query, UploadFile

from services.image.decoding import DecodedImage, decoded_batch
from services.image.errors import CORRUPT_IMAGE, MODEL_MISSING, NOT_AN_IMAGE, TOO_MANY_PIXELS
from services.image.faces import FaceDetector
from services.image.model import FaceEmotionModel
from services.image.pipeline import DetectMode, PipelineConfig, assemble, detector_name, locate_and_crop
from services.image.schemas import ImageBatchPrediction, ImagePrediction
from services.image.settings import Settings
from shared.batching import MicroBatcher, get_batcher
from shared.deps import get_model, get_settings
from shared.errors import batch_too_large, error_responses
from shared.labels import LABELS
from shared.schemas import ModelInfo


@dataclass(frozen=True)
class FaceStack:
    """What the service loads: the emotion network and the face detector."""

    model: FaceEmotionModel
    detector: FaceDetector

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        return self.model.version


ModelDep = Annotated[FaceStack, Depends(get_model)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
BatcherDep = Annotated[MicroBatcher[Any, Any], Depends(get_batcher)]

DetectParam = Annotated[
    DetectMode | None,
    Query(description="auto: detect, small images (<= 96 px) are a face crop; always: detect only; never: whole image"),
]
ERRORS = error_responses(
    413,
    415,
    422,
    503,
    examples={
        413: (TOO_MANY_PIXELS.format(pixels=48_000_000, limit=40_000_000), "image_too_large"),
        415: (NOT_AN_IMAGE, "unsupported_media_type"),
        422: (CORRUPT_IMAGE, "corrupt_input"),
        503: (MODEL_MISSING.format(reason="loading the model"), "model_not_ready"),
    },
)

router = APIRouter()


async def _predict(
    stack: FaceStack, settings: Settings, batcher: BatcherDep, payloads: list[bytes], detect: DetectMode | None
) -> list[ImagePrediction]:
    """Decode and detect in a worker thread, then classify every crop through the shared micro-batcher.

    Errors name the failing image in a batch; crops of concurrent requests share one forward pass.
    """
    mode = detect or settings.default_detect
    config = PipelineConfig(
        primary_face=settings.primary_face,
        small_image_side=settings.small_image_side,
        face_margin=settings.face_margin,
    )

    def locate(batch: list[bytes]) -> list[tuple[DecodedImage, list[Any], list[Any]]]:
        located = []
        # Headers checked and the decode memory reserved for the whole batch (413/503), errors name the image.
        with decoded_batch(batch, max_pixels=settings.max_pixels) as images:
            for image in images:
                boxes, crops = locate_and_crop(image, detector=stack.detector, mode=mode, config=config)
                located.append((image, boxes, crops))
        return located

    located = await anyio.to_thread.run_sync(locate, payloads)
    probabilities = await batcher.submit_many([crop for _, _, crops in located for crop in crops])
    bodies, offset = [], 0
    for image, boxes, _ in located:
        rows = np.asarray(probabilities[offset : offset + len(boxes)]).reshape(len(boxes), len(LABELS))
        name = detector_name(stack.detector, mode, image, config)
        bodies.append(assemble(image, boxes, rows, config, detector=name).to_dict())
        offset += len(boxes)
    info = ModelInfo(name=stack.name, version=stack.version)
    return [ImagePrediction.model_validate({**body, "model": info}) for body in bodies]


@router.post(
    "/predict",
    operation_id="predict_image",
    summary="Find the faces in one image and predict their emotions",
    response_model=ImagePrediction,
    responses=ERRORS,
)
async def predict(
    stack: ModelDep,
    settings: SettingsDep,
    batcher: BatcherDep,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP or BMP (checked by content)")],
    detect: DetectParam = None,
) -> ImagePrediction:
    """Every face with its box and probabilities; the primary face gives the image-level label."""
    (result,) = await _predict(stack, settings, batcher, [await image.read()], detect)
    return result


@router.post(
    "/predict/batch",
    operation_id="predict_image_batch",
    summary="Predict several images (repeat the `image` field)",
    response_model=ImageBatchPrediction,
    responses=ERRORS,
)
async def predict_batch(
    stack: ModelDep,
    settings: SettingsDep,
    batcher: BatcherDep,
    image: Annotated[list[UploadFile], File(description="Repeated image parts")],
    detect: DetectParam = None,
) -> ImageBatchPrediction:
    """One result per image, in upload order; one bad image fails the batch and is named."""
    if len(image) > settings.max_batch_size:
        raise batch_too_large(len(image), settings.max_batch_size, items="images")
    payloads = [await part.read() for part in image]
    return ImageBatchPrediction(results=await _predict(stack, settings, batcher, payloads, detect))
