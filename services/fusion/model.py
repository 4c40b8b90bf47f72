"""The fusion model: a Random Forest over per-modality probability vectors (pure; no web framework).

Features (31): the speech, text and image probability vectors in canonical label order (7 each,
zeros when the modality is absent), one presence flag per modality, then the product-rule posterior
of the present modalities (normalised product of their probabilities, 7). So one forest serves
every non-empty subset of modalities.

Output: one present modality comes back unchanged (its service already returns calibrated
probabilities). For two or more, ``(1 - w) * forest + w * product-rule posterior`` with ``w``
fitted out-of-fold on fusion-train (stacking; ``w = 0`` is the forest alone), then calibrated per
subset by a temperature ``T_s`` fitted out-of-fold too, and softened by the correlation guard:
the final temperature is ``T_s * (1 + c * (k - 1))`` for ``k`` present modalities. The forest and
``T_s`` learn from triples whose modalities are independent given the label; real signals of one
person are not, so ``c > 0`` (tunable, see the model card's stress test) keeps agreeing modalities
from being counted as independent evidence.
"""

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import joblib
import numpy as np

from shared.labels import LABELS, MODALITIES, NUM_LABELS

#: Bumped when the artefact's layout changes; :func:`load` refuses other formats.
ARTIFACT_FORMAT: Final[int] = 4
#: Older formats :func:`load` still reads (format 3 has no output calibration: T_s = 1, c = 0).
READABLE_FORMATS: Final[frozenset[int]] = frozenset({3, ARTIFACT_FORMAT})
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
#: Every non-empty modality subset, singles first, in canonical order, and their names ("speech+text").
SUBSETS: Final[tuple[tuple[str, ...], ...]] = tuple(
    combo for size in range(1, NUM_MODALITIES + 1) for combo in itertools.combinations(MODALITIES, size)
)
SUBSET_NAMES: Final[tuple[str, ...]] = tuple("+".join(s) for s in SUBSETS)
_FLAGS: Final[slice] = slice(NUM_MODALITIES * NUM_LABELS, NUM_MODALITIES * NUM_LABELS + NUM_MODALITIES)
_PRODUCT: Final[slice] = slice(NUM_MODALITIES * NUM_LABELS + NUM_MODALITIES, NUM_FEATURES)

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
    x[:, _FLAGS] = mask
    log_product -= log_product.max(axis=1, keepdims=True)
    product = np.exp(log_product)
    x[:, _PRODUCT] = product / product.sum(axis=1, keepdims=True)
    return x


def product_posterior(x: np.ndarray) -> np.ndarray:
    """The product-rule posterior columns of an (n, 31) feature matrix."""
    result: np.ndarray = np.asarray(x)[:, _PRODUCT]
    return result


def blend(forest: np.ndarray, product: np.ndarray, weight: float | np.ndarray) -> np.ndarray:
    """``(1 - weight) * forest + weight * product``: the fused output (``weight`` scalar or one per row)."""
    result: np.ndarray = (1.0 - weight) * forest + weight * product
    return result


def subset_codes(x: np.ndarray) -> np.ndarray:
    """Per row of a feature matrix, the index into :data:`SUBSETS` of the modalities present (-1: none)."""
    flags = np.asarray(x)[:, _FLAGS] > 0.5
    lookup = {tuple(m in subset for m in MODALITIES): i for i, subset in enumerate(SUBSETS)}
    return np.array([lookup.get(tuple(row), -1) for row in flags.tolist()], dtype=np.int64)


def check_output_temperatures(temperatures: Mapping[str, float]) -> dict[str, float]:
    """``temperatures`` as a complete subset-name -> T dict (1.0 where absent); ValueError unless all in (0, 100]."""
    unknown = set(temperatures) - set(SUBSET_NAMES)
    if unknown:
        raise ValueError(f"output temperatures for unknown subsets: {', '.join(sorted(unknown))}")
    checked = {name: float(temperatures.get(name, 1.0)) for name in SUBSET_NAMES}
    if not all(0.0 < t <= 100.0 for t in checked.values()):
        raise ValueError(f"output temperatures must lie in (0, 100], got {checked}")
    return checked


def check_correlation(correlation: float) -> float:
    """The correlation guard ``c``; ValueError unless it lies in [0, 1]."""
    value = float(correlation)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"the correlation guard must lie in [0, 1], got {value}")
    return value


def check_product_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """``weights`` as a complete subset-name -> weight dict; ValueError unless every weight is in [0, 1]."""
    unknown = set(weights) - set(SUBSET_NAMES)
    if unknown:
        raise ValueError(f"product weights for unknown subsets: {', '.join(sorted(unknown))}")
    checked = {name: float(weights.get(name, 0.0)) for name in SUBSET_NAMES}
    if not all(0.0 <= w <= 1.0 for w in checked.values()):
        raise ValueError(f"product weights must lie in [0, 1], got {checked}")
    return checked


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
    #: Per subset name, the weight of the product-rule posterior in the output (0.0 = forest alone).
    product_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUBSET_NAMES, 0.0))
    #: Per subset name, the temperature calibrating the blended output (1.0 = none; singles are never scaled).
    output_temperatures: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUBSET_NAMES, 1.0))
    #: The correlation guard ``c`` in [0, 1]: 0 trusts the independence of the training triples.
    correlation: float = 0.0
    #: Free-form provenance (training data, seed, metrics file), stored with the forest.
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The forest's ``predict_proba`` in a faster runtime (services.fusion.forest_onnx); None: scikit-learn's.
    runtime_proba: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False, compare=False)

    def predict(self, batch: Sequence[FusionInput], correlation: float | None = None) -> np.ndarray:
        """Fused (n, 7) probabilities for a batch of modality -> probability-vector mappings.

        A row with one modality is that modality's vector, exactly; ``correlation`` overrides the
        model's guard ``c`` for this call (e.g. from the service's settings).
        """
        fused = self.predict_features(features(batch, self.temperatures), correlation)
        for i, item in enumerate(batch):
            if len(item) == 1:
                fused[i] = np.asarray(next(iter(item.values())), dtype=np.float64)
        return fused

    def predict_features(self, x: np.ndarray, correlation: float | None = None) -> np.ndarray:
        """Fused and calibrated (n, 7) probabilities for an already built (n, 31) feature matrix.

        Rows with one modality give its (temperature-scaled) input vector; :meth:`predict` returns the raw one.
        """
        x = np.asarray(x, dtype=np.float64)
        return self.calibrate(x, self.blend_forest(x, self.forest_probabilities(x)), correlation)

    def calibrate(self, x: np.ndarray, blended: np.ndarray, correlation: float | None = None) -> np.ndarray:
        """Per-subset output temperature times the correlation guard; single-modality rows pass through."""
        c = self.correlation if correlation is None else check_correlation(correlation)
        codes = subset_codes(x)
        temps = np.array([self.output_temperatures.get(name, 1.0) for name in SUBSET_NAMES] + [1.0])[codes]
        present = np.asarray(x)[:, _FLAGS].sum(axis=1)
        temps = temps * (1.0 + c * np.maximum(present - 1.0, 0.0))
        out = np.array(blended, dtype=np.float64)
        single = present <= 1
        out[single] = product_posterior(x)[single]
        scaled = ~single & (temps != 1.0)
        for t in np.unique(temps[scaled]):
            rows = scaled & (temps == t)
            out[rows] = apply_temperature(out[rows], float(t))
        return out

    def blend_forest(self, x: np.ndarray, forest: np.ndarray) -> np.ndarray:
        """The fused output for feature matrix ``x`` given the forest's probabilities for it."""
        weights = np.array([self.product_weights.get(name, 0.0) for name in SUBSET_NAMES] + [0.0])
        w = weights[subset_codes(x)][:, None]  # code -1 (no modality) indexes the trailing 0.0
        return blend(forest, product_posterior(x), w)

    def forest_probabilities(self, x: np.ndarray) -> np.ndarray:
        """The forest's own (n, 7) class probabilities for an (n, 31) feature matrix (no blending)."""
        x = np.asarray(x, dtype=np.float64)
        raw = np.asarray(self.runtime_proba(x) if self.runtime_proba is not None else self.forest.predict_proba(x))
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
            "product_weights": check_product_weights(self.product_weights),
            "output_temperatures": check_output_temperatures(self.output_temperatures),
            "correlation": check_correlation(self.correlation),
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
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
        raise ModelFileError(f"{target} is not a fusion model of format {ARTIFACT_FORMAT} (or 3)")
    if tuple(payload["labels"]) != LABELS or tuple(payload["feature_names"]) != FEATURE_NAMES:
        raise ModelFileError(f"{target} was trained for other labels or features")
    forest = payload["forest"]
    if getattr(forest, "n_features_in_", None) != NUM_FEATURES:
        raise ModelFileError(f"{target} holds a forest that does not take {NUM_FEATURES} features")
    try:
        product_weights = check_product_weights(payload["product_weights"])
        output_temperatures = check_output_temperatures(payload.get("output_temperatures", {}))
        correlation = check_correlation(payload.get("correlation", 0.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{target} has no usable product weights or output calibration: {exc}") from exc
    return FusionModel(
        forest=forest,
        name=str(payload["name"]),
        version=str(payload["version"]),
        temperatures={m: float(payload["temperatures"].get(m, 1.0)) for m in MODALITIES},
        product_weights=product_weights,
        output_temperatures=output_temperatures,
        correlation=correlation,
        metadata=dict(payload.get("metadata", {})),
    )
