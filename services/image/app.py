"""Image (face emotion) inference service: ``uvicorn --factory services.image.app:create_app --port 8003``."""

import torch
from fastapi import FastAPI
from PIL import Image

from services.image import model as face_model
from services.image.api import FaceStack, router
from services.image.errors import MODEL_TITLE
from services.image.faces import FaceDetector
from services.image.settings import Settings, get_settings
from shared.batching import batching
from shared.service import create_inference_app


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model and detector are loaded by the shared lifespan, not at import time."""
    settings = settings or get_settings()

    def load() -> FaceStack:
        # PIL's own decompression-bomb guard, aligned with ours (it errors at twice this value).
        Image.MAX_IMAGE_PIXELS = settings.max_pixels
        torch.set_num_threads(settings.inference_threads)
        detector = FaceDetector(
            max_side=settings.detection_max_side, runtime=settings.detector_runtime, threads=settings.inference_threads
        )
        model = face_model.load(
            settings.model_dir,
            tta=settings.tta,
            runtime=settings.inference_runtime,
            threads=settings.inference_threads,
            cache_dir=settings.onnx_cache_dir,
            calibrated=settings.apply_calibration,
        )
        return FaceStack(model=model, detector=detector)

    return create_inference_app(
        name="image",
        title="Face emotion service",
        description="Finds faces in an image and predicts seven emotion probabilities for each.",
        version="0.1.0",
        settings=settings,
        load=load,
        routers=[router],
        tag_description="Face detection and emotion prediction",
        model_title=MODEL_TITLE,
        # Every face of every concurrent request in one forward pass.
        while_ready=batching(lambda stack: lambda crops: list(stack.model.predict(crops))),
    )
