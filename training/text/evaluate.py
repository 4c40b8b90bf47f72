"""``emotion evaluate text`` / ``emotion predict --text``: the text service's code path, outside the service.

The model folder, model kind and text limit come from the same ``Settings`` as the service
(``MODEL_DIR``, ``MODEL_KIND``, ``MAX_TEXT_CHARS`` environment variables); texts go through
``services.text.inputs.prepare_text`` and ``services.text.model``, exactly as ``/predict`` does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from services.text.errors import MODEL_NOT_LOADED
from services.text.inputs import predict_texts, prepare_text
from services.text.model import ArtifactError, TextModel, load
from services.text.settings import Settings
from shared.errors import InvalidInput, ModelNotReady
from training.manifest import Manifest, ManifestError


@lru_cache(maxsize=4)
def _load(
    path: Path, threads: int, runtime: str = "torch", cache_dir: Path | None = None, calibrated: bool = True
) -> TextModel:
    try:
        return load(path, threads=threads, runtime=runtime, cache_dir=cache_dir, calibrated=calibrated)
    except ArtifactError as exc:
        raise ModelNotReady(MODEL_NOT_LOADED.format(reason=exc)) from exc


def model_for(settings: Settings | None = None) -> tuple[TextModel, Settings]:
    """The model the service would serve with these settings (cached per folder)."""
    settings = settings or Settings()
    model = _load(
        settings.model_path,
        settings.inference_threads,
        settings.inference_runtime,
        settings.onnx_cache_dir,
        settings.apply_calibration,
    )
    return model, settings


def predict_manifest(manifest: Manifest, **options: Any) -> np.ndarray:
    """(n, 7) probabilities for the ``text`` column; a row the service would reject is an error."""
    if options:
        raise ManifestError(f"text evaluation takes no options (got {', '.join(options)})")
    model, settings = model_for()
    texts = []
    for line, text in enumerate(manifest.column("text"), start=2):
        try:
            texts.append(prepare_text(text, max_chars=settings.max_text_chars))
        except InvalidInput as exc:
            raise ManifestError(f"{manifest.path}:{line}: {exc.detail}") from exc
    return model.predict(texts)


def predict_one(value: str, **options: Any) -> dict[str, Any]:
    """The JSON ``POST /predict`` would answer for ``{"text": value}``."""
    if options:
        raise ManifestError(f"text prediction takes no options (got {', '.join(options)})")
    model, settings = model_for()
    text = prepare_text(value, max_chars=settings.max_text_chars)
    return predict_texts(model, [text])[0].model_dump(mode="json")
