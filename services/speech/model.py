"""The speech emotion model: a Keras network over representations of speech windows (pure, no FastAPI).

The network reads one or more named inputs:

* ``whisper`` — mean and standard deviation over time of chosen hidden layers of the pretrained
  Whisper-base encoder (``services.speech.encoder``; hash-pinned weights from ``shared.weights``),
  averaged or concatenated over those layers; or, for a head that pools with attention itself,
  those layers' states over time (zero-padded frames);
* ``features`` — an utterance-level statistics vector (``services.speech.features.extract``);
* ``logmel`` — a fixed-size log-mel patch (``services.speech.features.extract_logmel``).

Artefacts in the model folder:

* ``speech_emotion.keras`` — the Keras 3 model (for ``whisper``, only the small head: the encoder
  weights come from the pinned packages and are never stored here);
* ``speech_emotion.json`` — name, version, label order, its inputs, feature, encoder and segmentation parameters.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.speech.audio import SegmentationParams
from services.speech.encoder import (
    FINAL,
    WhisperEncoder,
    blocks_needed,
    combine_layers,
    frame_means,
    load_encoder,
    pad_frames,
)
from services.speech.features import FeatureParams, LogMelParams, WhisperMelParams, extract, extract_logmel
from shared.calibration import Calibrator, load_calibrator
from shared.labels import LABELS
from shared.weights import WHISPER_BASE, WeightsError

MODEL_FILE = "speech_emotion.keras"
CONFIG_FILE = "speech_emotion.json"


@dataclass(frozen=True)
class EncoderConfig:
    """The pretrained encoder a ``whisper`` input needs: which pinned weights, and how it is run."""

    weights: str = WHISPER_BASE.name
    sha256: str = WHISPER_BASE.sha256
    compute_type: str = "float32"
    #: ``mean_std``: each layer's mean and std over time, computed here; ``attention``: the head gets the
    #: layers' states over time (means of ``frame_stride`` 20 ms frames, zero-padded) and pools them itself.
    pooling: str = "mean_std"
    frame_stride: int = 1
    mel: WhisperMelParams = WhisperMelParams()
    #: Which states are pooled: 0 = embeddings, 1-6 = after each block, -1 = the final normalised output.
    layers: tuple[int, ...] = (FINAL,)
    #: How the pooled layers become one vector: ``mean`` over layers or ``concat``.
    combine: str = "concat"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "mel": self.mel.to_json(), "layers": list(self.layers)}

    @property
    def num_layers(self) -> int | None:
        """Blocks the encoder must run (None: all of them)."""
        return blocks_needed(self.layers)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EncoderConfig":
        config = cls(
            **{
                **data,
                "mel": WhisperMelParams.from_json(data.get("mel") or {}),
                "layers": tuple(data.get("layers") or (FINAL,)),
            }
        )
        if config.combine not in ("mean", "concat"):
            raise ValueError(f"unknown layer combination {config.combine!r}")
        if (config.weights, config.sha256) != (WHISPER_BASE.name, WHISPER_BASE.sha256):
            raise ValueError(f"model wants encoder weights {config.weights} ({config.sha256}), not the pinned ones")
        if config.pooling not in ("mean_std", "attention"):
            raise ValueError(f"unknown encoder pooling {config.pooling!r}")
        return config


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
    #: The network's named inputs, in order: ``whisper``, ``features`` and/or ``logmel``.
    inputs: tuple[str, ...] = ("features",)
    #: The pretrained encoder, for a model with a ``whisper`` input.
    encoder: EncoderConfig | None = None

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
        if self.encoder is not None:
            data["encoder"] = self.encoder.to_json()
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
            encoder=EncoderConfig.from_json(data["encoder"]) if data.get("encoder") else None,
        )

    def save(self, folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


class SpeechModel:
    """A loaded model: ``predict`` maps speech segments (16 kHz mono) to (n, 7) probabilities."""

    def __init__(
        self,
        network: Any,
        config: ModelConfig,
        encoder: WhisperEncoder | None = None,
        calibrator: Calibrator | None = None,
    ) -> None:
        self.network = network
        self.config = config
        self.encoder = encoder
        #: Maps the network's probabilities to calibrated ones (fitted on held-out speakers; identity when absent).
        self.calibrator = calibrator or Calibrator()
        self.name = config.name
        self.version = config.version
        self._call = inference_call(network)

    @property
    def sample_rate(self) -> int:
        return self.config.features.sample_rate

    @property
    def segmentation(self) -> SegmentationParams:
        return self.config.segmentation

    def features(self, segments: list[npt.NDArray[np.float32]]) -> dict[str, npt.NDArray[np.float32]]:
        """The model inputs for a batch: ``whisper`` (n, 1024), ``features`` (n, d), ``logmel`` (n, mels, frames)."""
        inputs: dict[str, npt.NDArray[np.float32]] = {}
        if "whisper" in self.config.inputs:
            if self.encoder is None:
                raise ValueError("model has a whisper input but no encoder was loaded")
            encoder = self.config.encoder or EncoderConfig()
            if encoder.pooling == "attention":
                inputs["whisper"] = frame_inputs(self.encoder, segments, encoder)
            else:
                pooled = self.encoder.pooled_layers_batch(segments, encoder.layers)
                inputs["whisper"] = np.stack([combine_layers(p, encoder.combine) for p in pooled])
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
        import keras

        # convert_to_numpy, not np.asarray: keras may run on the torch backend in a process that
        # imported it for the text model first, where outputs are tensors that require grad.
        out = np.asarray(keras.ops.convert_to_numpy(self._call(x)), dtype=np.float64)
        normalised: npt.NDArray[np.float64] = self.calibrator(out / out.sum(axis=1, keepdims=True))
        return normalised

    def predict(self, segments: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float64]:
        """(n, 7) probabilities in canonical label order, one row per segment."""
        if not segments:
            return np.zeros((0, len(LABELS)))
        return self.predict_features(self.features(segments))

    def warmup(self) -> None:
        """Run every part once (encoder, TF graph) so the first real request is not the slow one."""
        rng = np.random.default_rng(0)
        windows = [(0.05 * rng.standard_normal(int(s * self.sample_rate))).astype(np.float32) for s in (1.0, 3.0)]
        # One window, then two: the traced head call settles on a batch size of any length.
        for batch in ([windows[0]], [windows[1]], windows):
            self.predict(batch)


def frame_inputs(
    whisper: WhisperEncoder, segments: list[npt.NDArray[np.float32]], config: EncoderConfig
) -> npt.NDArray[np.float32]:
    """(n, frames, layers x 512): each window's layer states over time, zero-padded to the longest window.

    The head masks the padding (encoder states are never all zero), so a window's answer does not
    depend on the windows it shares a batch with.
    """
    states = whisper.layer_states_batch(segments, config.layers)
    # (layers, time, 512) -> (time', layers x 512): per frame the layers side by side, as cached for training.
    return pad_frames(
        [frame_means(s, config.frame_stride).transpose(1, 0, 2).reshape(-1, s.shape[0] * s.shape[2]) for s in states]
    )


def inference_call(network: Any) -> Any:
    """``network(x, training=False)``, traced once by TensorFlow when Keras runs on it.

    An eager Keras call of the five heads costs about 40 ms of Python and op dispatch for a few
    million multiply-adds; the traced graph about 10 ms. ``reduce_retracing`` lets the second batch
    size seen relax the batch dimension, so later sizes reuse that trace (warm-up makes both).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return lambda x: network(x, training=False)
    import tensorflow as tf

    return tf.function(lambda x: network(x, training=False), reduce_retracing=True)


def configure_threads(threads: int, blas_threads: int | None = None) -> None:
    """Limit TensorFlow's thread pools (must run before TF executes anything) and NumPy's BLAS.

    ``blas_threads`` (default ``threads``): the NumPy encoder needs them all; with the encoder on
    onnxruntime BLAS only computes small log-mel products, and its idle worker threads spinning beside
    onnxruntime's and TensorFlow's made a lone 3 s clip 40 % slower (service p50 145 -> 103 ms with one).
    """
    import tensorflow as tf
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads if blas_threads is None else blas_threads, user_api="blas")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # Already initialised in this process (e.g. a second app in tests): keep the first setting.
        pass


def load(
    path: Path,
    *,
    threads: int = 1,
    weights_cache: Path | None = None,
    calibrated: bool = True,
    encoder_runtime: str = "onnx",
) -> SpeechModel:
    """Load the model folder; FileNotFoundError names what is missing, ValueError what is wrong.

    A model with a ``whisper`` input also loads the pinned encoder (assembled under ``weights_cache``,
    default ``shared.weights.default_cache_dir()``); weights that fail their checksum are a ValueError.
    ``calibrated``: apply the folder's ``calibration.json`` to every segment's probabilities (absent:
    identity); off only to fit a new one (``python -m training.calibrate``). ``encoder_runtime``:
    ``onnx`` (onnxruntime) or ``numpy`` (the reference implementation the training cache was built with).
    """
    model_file = path / MODEL_FILE
    config_file = path / CONFIG_FILE
    missing = [str(p) for p in (model_file, config_file) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"missing model file(s): {', '.join(missing)}")
    config = ModelConfig.from_json(json.loads(config_file.read_text(encoding="utf-8")))
    if config.labels != LABELS:
        raise ValueError(f"model label order {config.labels} differs from {LABELS}")
    calibrator = load_calibrator(path) if calibrated else None  # a bad file fails before the slow loads
    encoder = None
    if "whisper" in config.inputs:
        if config.encoder is None:
            raise ValueError("model config has a whisper input but no encoder parameters")
        try:
            encoder = load_encoder(
                cache_dir=weights_cache,
                params=config.encoder.mel,
                num_layers=config.encoder.num_layers,
                runtime=encoder_runtime,
                threads=threads,
            )
        except WeightsError as exc:
            raise ValueError(str(exc)) from exc
    configure_threads(threads, blas_threads=1 if encoder is not None and encoder_runtime == "onnx" else threads)
    import keras

    from services.speech.layers import AttentiveStatsPooling, FrameMask, HalfStoredDense

    custom = {layer.__name__: layer for layer in (HalfStoredDense, FrameMask, AttentiveStatsPooling)}
    network = keras.saving.load_model(model_file, compile=False, custom_objects=custom)
    return SpeechModel(network, config, encoder, calibrator)
