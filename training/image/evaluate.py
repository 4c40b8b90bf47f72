"""``emotion evaluate image`` / ``emotion predict --image``: the service's decode -> detect -> classify path."""

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from services.image import model as face_model
from services.image.decoding import decode_image
from services.image.errors import MODEL_MISSING, FaceModelNotReady
from services.image.faces import FaceDetector
from services.image.pipeline import Classifier, DetectMode, PipelineConfig, analyze_batch
from services.image.settings import Settings, get_settings
from shared.labels import LABELS
from training.manifest import Manifest


@lru_cache
def _detector(max_side: int) -> FaceDetector:
    return FaceDetector(max_side=max_side)


def load_model(settings: Settings) -> face_model.FaceEmotionModel:
    """The shipped model, or the service's 503 error (exit code 2 in the CLI) if it is missing."""
    try:
        return face_model.load(
            settings.model_dir,
            tta=settings.tta,
            runtime=settings.inference_runtime,
            threads=settings.inference_threads,
            cache_dir=settings.onnx_cache_dir,
            calibrated=settings.apply_calibration,
        )
    except face_model.ModelLoadError as exc:
        raise FaceModelNotReady(MODEL_MISSING.format(reason=exc)) from exc


def _config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        primary_face=settings.primary_face, small_image_side=settings.small_image_side, face_margin=settings.face_margin
    )


def predict_paths(
    paths: Sequence[Path],
    *,
    detect: str | None = None,
    model: Classifier | None = None,
    settings: Settings | None = None,
    batch_size: int = 64,
) -> tuple[np.ndarray, int]:
    """(n, 7) probabilities of each image's primary face (a NaN row where no face) and the no-face count."""
    settings = settings or get_settings()
    classifier = model or load_model(settings)
    mode = DetectMode(detect) if detect else settings.default_detect
    detector = _detector(settings.detection_max_side)
    rows: list[np.ndarray] = []
    missing = 0
    for start in range(0, len(paths), batch_size):
        images = [
            decode_image(p.read_bytes(), max_pixels=settings.max_pixels) for p in paths[start : start + batch_size]
        ]
        for result in analyze_batch(images, model=classifier, detector=detector, mode=mode, config=_config(settings)):
            probs = result.probabilities
            if probs is None:
                # No face: no answer (the report counts a NaN row as wrong), never an invented label.
                missing += 1
                probs = np.full(len(LABELS), np.nan)
            rows.append(np.asarray(probs, dtype=np.float64))
    return np.stack(rows) if rows else np.zeros((0, len(LABELS))), missing


def predict_manifest(manifest: Manifest, detect: str | None = None, model: Classifier | None = None) -> np.ndarray:
    """Probabilities for every image in ``manifest`` (the CLI prints how many had no face)."""
    probabilities, missing = predict_paths(manifest.resolve("path"), detect=detect, model=model)
    if missing:
        print(f"note: no face found in {missing} of {len(probabilities)} images (counted as wrong: no prediction)")
    return probabilities


def predict_one(value: str, detect: str | None = None) -> dict[str, Any]:
    """The JSON the service's /predict would return for the file at ``value``."""
    settings = get_settings()
    loaded = load_model(settings)
    image = decode_image(Path(value).read_bytes(), max_pixels=settings.max_pixels)
    mode = DetectMode(detect) if detect else settings.default_detect
    (result,) = analyze_batch(
        [image], model=loaded, detector=_detector(settings.detection_max_side), mode=mode, config=_config(settings)
    )
    return {**result.to_dict(), "model": {"name": loaded.name, "version": loaded.version}}
