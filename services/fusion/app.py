"""The fusion service: ``uvicorn --factory services.fusion.app:create_app --port 8004``."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from services.fusion import model as fusion_model
from services.fusion.api import router
from services.fusion.settings import Settings, get_settings
from shared.service import create_service_app

logger = logging.getLogger(__name__)

VERSION = "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the forest is loaded in the lifespan (503 until then, or for good if missing)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        path = settings.model_path
        try:
            app.state.model = await anyio.to_thread.run_sync(fusion_model.load, path)
        except FileNotFoundError:
            app.state.not_ready_reason = f"model file not found: {path} (train it: python -m training.fusion.train)"
            logger.error("fusion model missing", extra={"path": str(path)})
        except fusion_model.ModelFileError as exc:
            app.state.not_ready_reason = str(exc)
            logger.error("fusion model unusable", extra={"path": str(path), "error": str(exc)})
        else:
            app.state.ready = True
            model = app.state.model
            logger.info("fusion model loaded", extra={"model": model.name, "version": model.version})
        yield
        app.state.model = None
        app.state.ready = False

    app = create_service_app(
        name="fusion",
        title="Emotion fusion service",
        description="Fuses speech, text and face emotion probabilities with a Random Forest.",
        version=VERSION,
        settings=settings,
        lifespan=lifespan,
        openapi_tags=[{"name": "fusion", "description": "Late fusion of per-modality probabilities"}],
    )
    app.state.model = None
    app.include_router(router)
    return app
