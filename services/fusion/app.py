"""The fusion service: ``uvicorn --factory services.fusion.app:create_app --port 8004``."""

import logging
from pathlib import Path

import numpy as np
from fastapi import FastAPI

from services.fusion import model as fusion_model
from services.fusion.api import router
from services.fusion.errors import MODEL_TITLE
from services.fusion.settings import Settings, get_settings
from shared.batching import batching
from shared.labels import LABELS
from shared.service import create_inference_app

VERSION = "0.1.0"

logger = logging.getLogger(__name__)
#: Probe inputs for the ONNX check: every modality subset, from random probability vectors.
PROBE_ROWS = 256


def warm_up(model: fusion_model.FusionModel) -> None:
    """One prediction through the forest, so the first request does not pay for lazy initialisation."""
    uniform = [1.0 / len(LABELS)] * len(LABELS)
    model.predict([{"text": uniform, "image": uniform}])


def load(settings: Settings, *, cache_dir: Path | None = None) -> fusion_model.FusionModel:
    """The artefact, with the correlation guard from the settings where one is set, and its forest on
    onnxruntime when ``INFERENCE_RUNTIME=onnx`` (the ONNX file cached in ``cache_dir``, default ``ONNX_CACHE_DIR``).
    """
    model = fusion_model.load(settings.model_path)
    if settings.correlation_guard is not None:
        model.correlation = fusion_model.check_correlation(settings.correlation_guard)
    if settings.inference_runtime == "onnx":
        from services.fusion.forest_onnx import onnx_forest

        try:
            model.runtime_proba = onnx_forest(
                model.forest,
                settings.model_path,
                probe=probe_features(model),
                threads=settings.inference_threads,
                cache_dir=cache_dir,
            )
        except Exception:  # a graph that differs (ValueError) or a conversion/runtime failure: never a 503
            logger.warning("fusion forest not served by onnxruntime; scikit-learn serves it", exc_info=True)
    return model


def probe_features(model: fusion_model.FusionModel, rows: int = PROBE_ROWS) -> np.ndarray:
    """Feature rows as the service builds them: random probabilities for every modality subset in turn."""
    rng = np.random.default_rng(0)
    subsets = [s for s in fusion_model.SUBSETS if len(s) > 1]
    batch = [{m: rng.dirichlet(np.full(len(LABELS), 0.5)) for m in subsets[i % len(subsets)]} for i in range(rows)]
    return fusion_model.features(batch, model.temperatures)


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
