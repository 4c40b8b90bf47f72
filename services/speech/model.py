"""The speech emotion model: a Keras network over acoustic features of speech windows (pure, no FastAPI).

The network reads one or both of two inputs, each extracted by ``services.speech.features``:
``features`` (utterance-level statistics vector, standardised inside the model) and ``logmel``
(a fixed-size log-mel patch). Artefacts in the model folder:

* ``speech_emotion.keras`` — the Keras 3 model;
* ``speech_emotion.json`` — name, version, label order, its inputs, feature and segmentation parameters.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.speech.audio import SegmentationParams
from services.speech.features import FeatureParams, LogMelParams, extract, extract_logmel
from shared.labels import LABELS

MODEL_FILE = "speech_emotion.keras"
CONFIG_FILE = "speech_emotion.json"


@dataclass(frozen=True)
class ModelConfig:
    """What travels with the weights: identity, label order and every preprocessing parameter."""

    name: str
    version: str
    labels: tuple[str, ...]
    features: FeatureParams
    segmentation: SegmentationParams
    metrics: dict[str, Any]
    #: Log-mel patch parameters, for a model with a ``logmel`` input.
    logmel: LogMelParams | None = None
    #: The network's named inputs, in order: ``features`` and/or ``logmel``.
    inputs: tuple[str, ...] = ("features",)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "labels": list(self.labels),
            "features": self.features.to_json(),
            "segmentation": asdict(self.segmentation),
            "metrics": self.metrics,
            "inputs": list(self.inputs),
        }
        if self.logmel is not None:
            data["logmel"] = self.logmel.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModelConfig":
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            labels=tuple(data["labels"]),
            features=FeatureParams.from_json(data["features"]),
            segmentation=SegmentationParams(**data["segmentation"]),
            metrics=dict(data.get("metrics") or {}),
            logmel=LogMelParams.from_json(data["logmel"]) if data.get("logmel") else None,
            # Older configs have no "inputs": a model with log-mel parameters reads the log-mel patch only.
            inputs=tuple(data.get("inputs") or (("logmel",) if data.get("logmel") else ("features",))),
        )

    def save(self, folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


class SpeechModel:
    """A loaded model: ``predict`` maps speech segments (16 kHz mono) to (n, 7) probabilities."""

    def __init__(self, network: Any, config: ModelConfig) -> None:
        self.network = network
        self.config = config
        self.name = config.name
        self.version = config.version

    @property
    def sample_rate(self) -> int:
        return self.config.features.sample_rate

    @property
    def segmentation(self) -> SegmentationParams:
        return self.config.segmentation

    def features(self, segments: list[npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[np.float32]]:
        """The model inputs for a batch: ``features`` (n, d) statistics and/or ``logmel`` (n, mels, frames)."""
        inputs: dict[str, npt.NDArray[np.float32]] = {}
        if "features" in self.config.inputs:
            inputs["features"] = np.stack([extract(s, self.config.features) for s in segments]).astype(np.float32)
        if "logmel" in self.config.inputs:
            logmel = self.config.logmel
            if logmel is None:
                raise ValueError("model config has a logmel input but no logmel parameters")
            inputs["logmel"] = np.stack([extract_logmel(s, logmel) for s in segments]).astype(np.float32)
        return inputs

    def predict_features(
        self, inputs: dict[str, npt.NDArray[np.float32]] | npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float64]:
        """Probabilities for precomputed model inputs (see :meth:`features`; an array for a one-input model)."""
        if not isinstance(inputs, dict):
            inputs = {self.config.inputs[0]: inputs}
        n = next(iter(inputs.values())).shape[0]
        if n == 0:
            return np.zeros((0, len(LABELS)))
        x: Any = inputs[self.config.inputs[0]] if len(self.config.inputs) == 1 else inputs
        out: npt.NDArray[np.float64] = np.asarray(self.network(x, training=False), dtype=np.float64)
        normalised: npt.NDArray[np.float64] = out / out.sum(axis=1, keepdims=True)
        return normalised

    def predict(self, segments: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float64]:
        """(n, 7) probabilities in canonical label order, one row per segment."""
        if not segments:
            return np.zeros((0, len(LABELS)))
        return self.predict_features(self.features(segments))


def configure_threads(threads: int) -> None:
    """Limit TensorFlow's thread pools (must run before TF executes anything)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # Already initialised in this process (e.g. a second app in tests): keep the first setting.
        pass


def load(path: Path, *, threads: int = 1) -> SpeechModel:
    """Load the model folder; FileNotFoundError names what is missing, ValueError what is wrong."""
    model_file = path / MODEL_FILE
    config_file = path / CONFIG_FILE
    missing = [str(p) for p in (model_file, config_file) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"missing model file(s): {', '.join(missing)}")
    config = ModelConfig.from_json(json.loads(config_file.read_text(encoding="utf-8")))
    if config.labels != LABELS:
        raise ValueError(f"model label order {config.labels} differs from {LABELS}")
    configure_threads(threads)
    import keras

    network = keras.saving.load_model(model_file, compile=False)
    return SpeechModel(network, config)
