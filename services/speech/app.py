"""Speech emotion service: ``uvicorn --factory services.speech.app:create_app --port 8001``."""

from fastapi import FastAPI

from services.speech import model as speech_model
from services.speech.api import router
from services.speech.errors import MODEL_TITLE
from services.speech.settings import Settings, get_settings
from shared.batching import batching
from shared.service import create_inference_app


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model is loaded by the shared lifespan, and /readyz stays 503 if it cannot be."""
    settings = settings or get_settings()
    return create_inference_app(
        name="speech",
        title="Speech emotion service",
        description="Emotion of speech audio: overall probabilities and a per-window timeline.",
        version="0.1.0",
        settings=settings,
        load=lambda: speech_model.load(
            settings.model_dir,
            threads=settings.inference_threads,
            calibrated=settings.apply_calibration,
            encoder_runtime=settings.encoder_runtime,
        ),
        # Encoder and TF graph run once before /readyz turns green: the first request is not the slow one.
        warmup=lambda model: model.warmup(),
        routers=[router],
        tag_description="Speech emotion inference",
        model_title=MODEL_TITLE,
        # The speech windows of all concurrent clips in one model call.
        while_ready=batching(lambda model: lambda windows: list(model.predict(windows))),
    )
