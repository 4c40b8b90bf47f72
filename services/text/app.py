"""The text emotion service: ``uvicorn --factory services.text.app:create_app --port 8002``."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from services.text.api import router
from services.text.model import ArtifactError, load
from services.text.settings import Settings, get_settings
from shared.service import create_service_app

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Classifies text into seven emotions (angry, disgust, fear, happy, sad, surprise, neutral) with a "
    "fine-tuned MiniLM-L6 (default) or a Keras Bi-LSTM (`MODEL_KIND=bilstm`). Texts longer than the model "
    "window are cut to their head and flagged `truncated`."
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model is loaded by the lifespan, never at import time."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.model = None
        app.state.not_ready_reason = f"loading {settings.model_kind} model from {settings.model_path}"
        try:
            app.state.model = await anyio.to_thread.run_sync(
                lambda: load(settings.model_path, threads=settings.inference_threads)
            )
        except ArtifactError as exc:
            app.state.not_ready_reason = str(exc)
            logger.error("text model not loaded: %s", exc)
        except Exception as exc:  # a corrupt file must not crash the process: report it on /readyz
            app.state.not_ready_reason = f"{type(exc).__name__} while loading {settings.model_path}: {exc}"
            logger.exception("text model failed to load")
        else:
            app.state.ready = True
            logger.info("text model ready", extra={"model": app.state.model.name, "kind": settings.model_kind})
        yield
        app.state.model = None

    app = create_service_app(
        name="text",
        title="Text emotion service",
        description=DESCRIPTION,
        version="0.1.0",
        settings=settings,
        lifespan=lifespan,
        openapi_tags=[{"name": "inference", "description": "Emotion of text"}, {"name": "health"}],
    )
    app.state.settings = settings
    app.include_router(router)
    return app
