"""The fusion model: a Random Forest over per-modality probability vectors (pure; no web framework).

Features (31): the speech, text and image probability vectors in canonical label order (7 each,
zeros when the modality is absent), one presence flag per modality, then the product-rule posterior
of the present modalities (normalised product of their probabilities, 7). So one forest serves
every non-empty subset of modalities.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import joblib
import numpy as np

from shared.labels import LABELS, MODALITIES, NUM_LABELS

#: Bumped when the artefact's layout changes; :func:`load` refuses other formats.
ARTIFACT_FORMAT: Final[int] = 2
#: File name of the forest inside the model directory.
MODEL_FILE: Final[str] = "fusion_forest.joblib"
NUM_MODALITIES: Final[int] = len(MODALITIES)
NUM_FEATURES: Final[int] = NUM_MODALITIES * NUM_LABELS + NUM_MODALITIES + NUM_LABELS
FEATURE_NAMES: Final[tuple[str, ...]] = (
    tuple(f"{m}.{label}" for m in MODALITIES for label in LABELS)
    + tuple(f"{m}.present" for m in MODALITIES)
    + tuple(f"product.{label}" for label in LABELS)
)
#: Floor for probabilities before taking logs (temperature scaling, product baseline).
EPSILON: Final[float] = 1e-6

#: One input: modality name -> seven probabilities in canonical label order.
FusionInput = Mapping[str, Sequence[float] | np.ndarray]


class ModelFileError(ValueError):
    """The model file exists but is not a fusion model this code can use."""


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale probability rows as ``softmax(log(p) / T)``; ``T == 1`` returns them unchanged."""
    p = np.asarray(probabilities, dtype=np.float64)
    if temperature == 1.0:
        return p
    logits = np.log(np.clip(p, EPSILON, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    result: np.ndarray = scaled / scaled.sum(axis=-1, keepdims=True)
    return result


def stack_features(probabilities: Mapping[str, np.ndarray], present: np.ndarray) -> np.ndarray:
    """The (n, 31) feature matrix from per-modality (n, 7) matrices and an (n, 3) presence mask.

    Rows of absent modalities are zeroed whatever ``probabilities`` holds for them and do not enter
    the product-rule posterior (last 7 columns; with one modality present it is that modality's vector).
    """
    mask = np.asarray(present, dtype=bool)
    if mask.ndim != 2 or mask.shape[1] != NUM_MODALITIES:
        raise ValueError(f"presence mask must have shape (n, {NUM_MODALITIES}), got {mask.shape}")
    n = mask.shape[0]
    x = np.zeros((n, NUM_FEATURES), dtype=np.float64)
    log_product = np.zeros((n, NUM_LABELS), dtype=np.float64)
    for j, modality in enumerate(MODALITIES):
        if not mask[:, j].any():
            continue
        p = np.asarray(probabilities[modality], dtype=np.float64)
        if p.shape != (n, NUM_LABELS):
            raise ValueError(f"{modality} probabilities must have shape ({n}, {NUM_LABELS}), got {p.shape}")
        x[:, j * NUM_LABELS : (j + 1) * NUM_LABELS] = np.where(mask[:, j : j + 1], p, 0.0)
        log_product += np.where(mask[:, j : j + 1], np.log(np.clip(p, EPSILON, 1.0)), 0.0)
    flags = NUM_MODALITIES * NUM_LABELS
    x[:, flags : flags + NUM_MODALITIES] = mask
    log_product -= log_product.max(axis=1, keepdims=True)
    product = np.exp(log_product)
    x[:, flags + NUM_MODALITIES :] = product / product.sum(axis=1, keepdims=True)
    return x


def features(batch: Sequence[FusionInput], temperatures: Mapping[str, float] | None = None) -> np.ndarray:
    """The (n, 31) feature matrix of a batch of inputs, each a non-empty modality -> vector mapping."""
    n = len(batch)
    present = np.zeros((n, NUM_MODALITIES), dtype=bool)
    probabilities = {m: np.zeros((n, NUM_LABELS)) for m in MODALITIES}
    for i, item in enumerate(batch):
        if not item:
            raise ValueError(f"input {i} has no modality")
        for key, vector in item.items():
            modality = str(key)
            if modality not in MODALITIES:
                raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
            values = np.asarray(vector, dtype=np.float64)
            if values.shape != (NUM_LABELS,):
                raise ValueError(f"{modality} needs {NUM_LABELS} probabilities, got shape {values.shape}")
            if not np.isfinite(values).all() or (values < 0).any() or not math.isclose(values.sum(), 1.0, abs_tol=1e-3):
                raise ValueError(f"{modality} probabilities must be finite, non-negative and sum to 1")
            present[i, MODALITIES.index(modality)] = True
            probabilities[modality][i] = values
    if temperatures:
        for modality, t in temperatures.items():
            probabilities[modality] = apply_temperature(probabilities[modality], t)
    return stack_features(probabilities, present)


@dataclass
class FusionModel:
    """A fitted forest plus what is needed to feed it; ``predict`` maps a batch to (n, 7) probabilities."""

    forest: Any
    name: str
    version: str
    #: Per-modality temperature applied to the inputs before the forest (1.0 = none).
    temperatures: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MODALITIES, 1.0))
    #: Free-form provenance (training data, seed, metrics file), stored with the forest.
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict(self, batch: Sequence[FusionInput]) -> np.ndarray:
        """Fused (n, 7) probabilities for a batch of modality -> probability-vector mappings."""
        return self.predict_features(features(batch, self.temperatures))

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """Fused (n, 7) probabilities for an already built (n, 31) feature matrix."""
        raw = np.asarray(self.forest.predict_proba(np.asarray(x, dtype=np.float64)))
        out = np.zeros((raw.shape[0], NUM_LABELS), dtype=np.float64)
        # The forest only has columns for classes it saw; place them at their canonical index.
        out[:, np.asarray(self.forest.classes_, dtype=int)] = raw
        totals = out.sum(axis=1, keepdims=True)
        result: np.ndarray = out / np.where(totals > 0, totals, 1.0)
        return result

    def scale_inputs(self, probabilities: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Apply this model's temperatures to per-modality (n, 7) matrices."""
        return {m: apply_temperature(p, self.temperatures.get(m, 1.0)) for m, p in probabilities.items()}

    def save(self, path: str | Path) -> Path:
        """Write the artefact (compressed joblib) and return its path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": ARTIFACT_FORMAT,
            "labels": list(LABELS),
            "feature_names": list(FEATURE_NAMES),
            "name": self.name,
            "version": self.version,
            "temperatures": dict(self.temperatures),
            "metadata": dict(self.metadata),
            "forest": self.forest,
        }
        joblib.dump(payload, target, compress=("xz", 3))
        return target


def load(path: str | Path) -> FusionModel:
    """Load a model directory (or the artefact file itself).

    Raises FileNotFoundError when absent and :class:`ModelFileError` when it is not a usable model.
    The artefact is a pickle: only load files this project wrote (the committed artefact).
    """
    target = Path(path)
    if target.is_dir():
        target = target / MODEL_FILE
    if not target.is_file():
        raise FileNotFoundError(f"fusion model file not found: {target}")
    try:
        payload = joblib.load(target)
    except Exception as exc:
        raise ModelFileError(f"cannot read fusion model {target}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
        raise ModelFileError(f"{target} is not a fusion model of format {ARTIFACT_FORMAT}")
    if tuple(payload["labels"]) != LABELS or tuple(payload["feature_names"]) != FEATURE_NAMES:
        raise ModelFileError(f"{target} was trained for other labels or features")
    forest = payload["forest"]
    if getattr(forest, "n_features_in_", None) != NUM_FEATURES:
        raise ModelFileError(f"{target} holds a forest that does not take {NUM_FEATURES} features")
    return FusionModel(
        forest=forest,
        name=str(payload["name"]),
        version=str(payload["version"]),
        temperatures={m: float(payload["temperatures"].get(m, 1.0)) for m in MODALITIES},
        metadata=dict(payload.get("metadata", {})),
    )
