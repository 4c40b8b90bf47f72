"""``emotion evaluate speech`` / ``emotion predict --audio``: the service's own decode + model path."""

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from services.speech.api import to_response
from services.speech.errors import MODEL_MISSING_DETAIL
from services.speech.model import SpeechModel, load
from services.speech.pipeline import analyse
from services.speech.settings import Settings
from shared.errors import ModelNotReady, ServiceError
from training.manifest import Manifest

#: Files decoded and classified per model call.
CHUNK = 16


@lru_cache(maxsize=2)
def _load(model_dir: Path, threads: int, calibrated: bool = True, encoder_runtime: str = "onnx") -> SpeechModel:
    try:
        return load(model_dir, threads=threads, calibrated=calibrated, encoder_runtime=encoder_runtime)
    except (FileNotFoundError, ValueError) as exc:
        raise ModelNotReady(MODEL_MISSING_DETAIL.format(reason=exc)) from exc


def get_model(settings: Settings | None = None) -> SpeechModel:
    """The model the service would load (``MODEL_DIR``), cached per process."""
    settings = settings or Settings()
    return _load(settings.model_dir, settings.inference_threads, settings.apply_calibration, settings.encoder_runtime)


def predict_manifest(manifest: Manifest, **_options: Any) -> np.ndarray:
    """(n, 7) overall probabilities, one row per manifest row."""
    settings = Settings()
    model = get_model(settings)
    paths = manifest.resolve("path")
    rows: list[np.ndarray] = []
    for start in range(0, len(paths), CHUNK):
        chunk = paths[start : start + CHUNK]
        datas = [p.read_bytes() for p in chunk]
        try:
            results = analyse(datas, model=model, max_duration_s=settings.max_duration_s, names=[str(p) for p in chunk])
        except ServiceError as exc:
            raise type(exc)(f"{exc.detail} [{manifest.path}]") from exc
        rows.extend(r.probabilities for r in results)
    return np.vstack(rows)


def predict_one(value: str, **_options: Any) -> dict[str, Any]:
    """The JSON ``POST /predict`` would return for this file."""
    settings = Settings()
    model = get_model(settings)
    (result,) = analyse([Path(value).read_bytes()], model=model, max_duration_s=settings.max_duration_s)
    return to_response(result, model).model_dump(mode="json")
