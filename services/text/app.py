"""The text emotion service: ``uvicorn --factory services.text.app:create_app --port 8002``."""

from fastapi import FastAPI

from services.text.api import router
from services.text.errors import MODEL_TITLE
from services.text.inputs import predict_texts
from services.text.model import TextModel, load
from services.text.settings import Settings, get_settings
from shared.batching import batching
from shared.service import create_inference_app

DESCRIPTION = (
    "Classifies text into seven emotions (angry, disgust, fear, happy, sad, surprise, neutral) with a "
    "fine-tuned MiniLM-L6 (default) or a Keras Bi-LSTM (`MODEL_KIND=bilstm`). Texts longer than the model "
    "window are cut to their head and flagged `truncated`. Probabilities are calibrated (vector or temperature "
    "scaling fitted on the validation splits; see the model card)."
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model is loaded by the shared lifespan, never at import time."""
    settings = settings or get_settings()

    def load_model() -> TextModel:
        return load(
            settings.model_path,
            threads=settings.inference_threads,
            runtime=settings.inference_runtime,
            cache_dir=settings.onnx_cache_dir,
            calibrated=settings.apply_calibration,
        )

    return create_inference_app(
        name="text",
        title="Text emotion service",
        description=DESCRIPTION,
        version="0.1.0",
        settings=settings,
        load=load_model,
        routers=[router],
        tag_description="Emotion of text",
        model_title=MODEL_TITLE,
        # Concurrent requests share one model call (padded to the batch's longest text).
        while_ready=batching(lambda model: lambda texts: predict_texts(model, texts)),
    )
