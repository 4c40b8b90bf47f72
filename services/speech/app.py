"""Speech emotion service: ``uvicorn --factory services.speech.app:create_app --port 8001``."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from services.speech import model as speech_model
from services.speech.api import build_router
from services.speech.settings import Settings, get_settings
from shared.service import create_service_app

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model is loaded in the lifespan, and /readyz stays 503 if it cannot be."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.model = None
        try:
            app.state.model = await anyio.to_thread.run_sync(
                lambda: speech_model.load(settings.model_dir, threads=settings.inference_threads)
            )
        except (FileNotFoundError, ValueError, OSError) as exc:
            app.state.not_ready_reason = str(exc)
            logger.error("speech model not loaded: %s", exc)
        else:
            app.state.ready = True
            logger.info("speech model loaded", extra={"model": app.state.model.name})
        yield
        app.state.model = None
        app.state.ready = False

    app = create_service_app(
        name="speech",
        title="Speech emotion service",
        description="Emotion of speech audio: overall probabilities and a per-window timeline.",
        version="0.1.0",
        settings=settings,
        lifespan=lifespan,
        openapi_tags=[{"name": "speech", "description": "Speech emotion inference"}],
    )
    app.state.settings = settings
    app.include_router(build_router())
    return app
