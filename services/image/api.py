"""Routes: ``/predict`` (one image) and ``/predict/batch`` (repeated ``image`` parts)."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile

from services.image.decoding import DecodedImage, decode_image
from services.image.errors import BATCH_EMPTY, BATCH_TOO_LARGE, MODEL_MISSING, FaceModelNotReady, InvalidImage
from services.image.model import FaceEmotionModel
from services.image.pipeline import DetectMode, PipelineConfig, analyze_batch
from services.image.schemas import ImageBatchPrediction, ImagePrediction
from services.image.settings import Settings
from shared.errors import ServiceError, error_responses
from shared.schemas import ModelInfo
from shared.service import run_inference

router = APIRouter(tags=["inference"])

DetectParam = Annotated[
    DetectMode | None,
    Query(description="auto: detect, small face-less images count as a crop; always: detect only; never: whole image"),
]


def _model(request: Request) -> FaceEmotionModel:
    model: FaceEmotionModel | None = request.app.state.model
    if model is None:
        raise FaceModelNotReady(MODEL_MISSING.format(reason=request.app.state.not_ready_reason))
    return model


async def _predict(request: Request, payloads: list[bytes], detect: DetectMode | None) -> list[ImagePrediction]:
    """Decode, detect and classify in a worker thread; errors name the failing image in a batch."""
    model = _model(request)
    settings: Settings = request.app.state.settings
    mode = detect or settings.default_detect
    config = PipelineConfig(
        primary_face=settings.primary_face,
        small_image_side=settings.small_image_side,
        face_margin=settings.face_margin,
    )

    def work(batch: list[bytes]) -> list[dict[str, Any]]:
        images: list[DecodedImage] = []
        for index, data in enumerate(batch):
            try:
                images.append(decode_image(data, max_pixels=settings.max_pixels))
            except ServiceError as exc:
                if len(batch) > 1:
                    exc.detail = f"image {index}: {exc.detail}"
                raise
        results = analyze_batch(images, model=model, detector=request.app.state.detector, mode=mode, config=config)
        return [r.to_dict() for r in results]

    bodies = await run_inference(request.app.state.metrics, work, payloads)
    info = ModelInfo(name=model.name, version=model.version)
    return [ImagePrediction.model_validate({**body, "model": info}) for body in bodies]


@router.post(
    "/predict",
    operation_id="predictImage",
    summary="Find the faces in one image and predict their emotions",
    response_model=ImagePrediction,
    responses=error_responses(413, 422, 503),
)
async def predict(
    request: Request,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP or BMP (checked by content)")],
    detect: DetectParam = None,
) -> ImagePrediction:
    (result,) = await _predict(request, [await image.read()], detect)
    return result


@router.post(
    "/predict/batch",
    operation_id="predictImageBatch",
    summary="Predict several images (repeat the `image` field)",
    response_model=ImageBatchPrediction,
    responses=error_responses(413, 422, 503),
)
async def predict_batch(
    request: Request,
    image: Annotated[list[UploadFile], File(description="Repeated image parts")],
    detect: DetectParam = None,
) -> ImageBatchPrediction:
    settings: Settings = request.app.state.settings
    if not image:
        raise InvalidImage(BATCH_EMPTY)
    if len(image) > settings.max_batch_size:
        raise InvalidImage(BATCH_TOO_LARGE.format(limit=settings.max_batch_size, count=len(image)))
    payloads = [await part.read() for part in image]
    return ImageBatchPrediction(results=await _predict(request, payloads, detect))
