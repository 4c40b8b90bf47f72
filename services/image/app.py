"""Image (face emotion) inference service: ``uvicorn --factory services.image.app:create_app --port 8003``."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import torch
from fastapi import FastAPI
from PIL import Image

from services.image import model as face_model
from services.image.api import router
from services.image.faces import FaceDetector
from services.image.settings import Settings, get_settings
from shared.service import create_service_app

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model and detector are loaded in the lifespan, not at import time."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.model = None
        # PIL's own decompression-bomb guard, aligned with ours (it errors at twice this value).
        Image.MAX_IMAGE_PIXELS = settings.max_pixels
        torch.set_num_threads(settings.inference_threads)
        app.state.detector = FaceDetector(max_side=settings.detection_max_side)
        try:
            app.state.model = await anyio.to_thread.run_sync(
                lambda: face_model.load(settings.model_dir, tta=settings.tta)
            )
        except face_model.ModelLoadError as exc:
            app.state.not_ready_reason = str(exc)
            logger.error("face emotion model not loaded", extra={"reason": str(exc)})
        else:
            app.state.ready = True
            logger.info("face emotion model loaded", extra={"model_version": app.state.model.version})
        yield
        app.state.model = None

    app = create_service_app(
        name="image",
        title="Face emotion service",
        description="Finds faces in an image and predicts seven emotion probabilities for each.",
        version="0.1.0",
        settings=settings,
        lifespan=lifespan,
        openapi_tags=[{"name": "inference", "description": "Face detection and emotion prediction."}],
    )
    app.include_router(router)
    return app
