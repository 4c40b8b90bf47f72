"""Probability calibrators a service ships beside its model (temperature or vector scaling).

A calibrator maps a model's probabilities ``p`` to ``softmax(w * log(p) + b)``: temperature
scaling is ``w = 1/T`` for every class and ``b = 0``; vector scaling has one ``w`` and ``b`` per
class. It is fitted on validation data the model did not train on (``training/calibration.py``)
and stored as a small JSON file, so every service applies it the same way.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from shared.labels import NUM_LABELS

#: File name of a calibrator inside a model directory.
CALIBRATION_FILE: Final[str] = "calibration.json"
#: Floor for probabilities before taking logs.
EPSILON: Final[float] = 1e-7

Kind = Literal["identity", "temperature", "vector"]


class CalibrationError(ValueError):
    """The calibration file exists but does not describe a usable calibrator."""


@dataclass(frozen=True)
class Calibrator:
    """``softmax(scale * log(p) + bias)`` per row; the identity leaves probabilities unchanged."""

    kind: Kind = "identity"
    scale: tuple[float, ...] = (1.0,) * NUM_LABELS
    bias: tuple[float, ...] = (0.0,) * NUM_LABELS
    #: Where it was fitted and what it did there (free-form, shown in model cards).
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("identity", "temperature", "vector"):
            raise CalibrationError(f"unknown calibrator kind {self.kind!r}")
        for name, values in (("scale", self.scale), ("bias", self.bias)):
            if len(values) != NUM_LABELS or not all(math.isfinite(v) for v in values):
                raise CalibrationError(f"calibrator {name} must be {NUM_LABELS} finite numbers")
        if any(v <= 0 for v in self.scale):
            raise CalibrationError("calibrator scale must be positive (it would reorder or flatten classes)")
        if self.kind == "temperature" and (len(set(self.scale)) != 1 or any(self.bias)):
            raise CalibrationError("a temperature calibrator has one scale and no bias")

    @classmethod
    def temperature(cls, temperature: float, fitted_on: str = "") -> "Calibrator":
        """Temperature scaling: ``softmax(log(p) / T)``."""
        if not temperature > 0:
            raise CalibrationError("temperature must be positive")
        return cls(kind="temperature", scale=(1.0 / temperature,) * NUM_LABELS, fitted_on=fitted_on)

    @property
    def is_identity(self) -> bool:
        return self.kind == "identity" or (all(v == 1.0 for v in self.scale) and not any(self.bias))

    def __call__(self, probabilities: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Calibrated rows of an (n, 7) matrix (or one 7-vector); the identity returns them as float64."""
        p = np.asarray(probabilities, dtype=np.float64)
        if self.is_identity:
            return p
        logits = np.log(np.clip(p, EPSILON, 1.0)) * np.asarray(self.scale) + np.asarray(self.bias)
        logits -= logits.max(axis=-1, keepdims=True)
        scaled = np.exp(logits)
        result: np.ndarray = scaled / scaled.sum(axis=-1, keepdims=True)
        return result

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "scale": list(self.scale), "bias": list(self.bias), "fitted_on": self.fitted_on}

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        target.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return target


def load_calibrator(path: str | Path, *, required: bool = False) -> Calibrator:
    """The calibrator in ``path`` (a file, or a model directory holding ``calibration.json``).

    A missing file gives the identity unless ``required``; a malformed one is refused.
    """
    target = Path(path)
    if target.is_dir():
        target = target / CALIBRATION_FILE
    if not target.is_file():
        if required:
            raise CalibrationError(f"no calibration file {target.name}")
        return Calibrator()
    try:
        raw = json.loads(target.read_text(encoding="utf-8"))
        return Calibrator(
            kind=raw["kind"],
            scale=tuple(float(v) for v in raw["scale"]),
            bias=tuple(float(v) for v in raw["bias"]),
            fitted_on=str(raw.get("fitted_on", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"malformed calibration file {target.name}: {exc}") from exc
