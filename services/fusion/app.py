"""The fusion service: ``uvicorn --factory services.fusion.app:create_app --port 8004``."""

from fastapi import FastAPI

from services.fusion import model as fusion_model
from services.fusion.api import router
from services.fusion.errors import MODEL_TITLE
from services.fusion.settings import Settings, get_settings
from shared.batching import batching
from shared.labels import LABELS
from shared.service import create_inference_app

VERSION = "0.1.0"


def warm_up(model: fusion_model.FusionModel) -> None:
    """One prediction through the forest, so the first request does not pay for lazy initialisation."""
    uniform = [1.0 / len(LABELS)] * len(LABELS)
    model.predict([{"text": uniform, "image": uniform}])


def load(settings: Settings) -> fusion_model.FusionModel:
    """The artefact, with the correlation guard from the settings where one is set."""
    model = fusion_model.load(settings.model_path)
    if settings.correlation_guard is not None:
        model.correlation = fusion_model.check_correlation(settings.correlation_guard)
    return model


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the forest is loaded by the shared lifespan (503 until then, or for good if missing)."""
    settings = settings or get_settings()
    return create_inference_app(
        name="fusion",
        title="Emotion fusion service",
        description="Fuses speech, text and face emotion probabilities with a Random Forest.",
        version=VERSION,
        settings=settings,
        load=lambda: load(settings),
        warmup=warm_up,
        routers=[router],
        tag_description="Late fusion of per-modality probabilities",
        model_title=MODEL_TITLE,
        # One forest pass for all concurrent /fuse requests.
        while_ready=batching(lambda model: lambda items: list(model.predict(items))),
    )
