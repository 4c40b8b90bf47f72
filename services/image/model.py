"""The face-emotion classifier: load the shipped weights and predict seven probabilities per face crop.

Pure (no web framework): used by the service and by ``emotion evaluate image``.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from services.image.network import INPUT_SIZE, EmotionEnsemble, EmotionNet, normalize
from shared.calibration import CalibrationError, Calibrator, load_calibrator
from shared.labels import LABELS

#: File name of the weights inside the model directory.
WEIGHTS_FILE = "face_emotion.pt"


class ModelLoadError(Exception):
    """The weights are missing or unreadable; the message says which file and why."""


def to_input(crop: np.ndarray) -> np.ndarray:
    """Any-size (h, w) uint8 greyscale face crop -> (48, 48) uint8, as in training."""
    if crop.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale crop, got shape {crop.shape}")
    if crop.shape == (INPUT_SIZE, INPUT_SIZE):
        return crop
    shrinking = crop.shape[0] > INPUT_SIZE or crop.shape[1] > INPUT_SIZE
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=interpolation), dtype=np.uint8)


@dataclass
class FaceEmotionModel:
    """A loaded network plus its identity; ``predict`` takes greyscale crops and returns (n, 7) probabilities."""

    network: nn.Module
    name: str
    version: str
    tta: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    #: An onnxruntime session running the same network (see :mod:`shared.onnx_runtime`).
    session: Any = field(default=None, repr=False)
    runtime: str = "torch"
    #: Maps the network's probabilities to calibrated ones (fitted on validation data; identity when absent).
    calibrator: Calibrator = field(default_factory=Calibrator)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.session is None:
            logits: torch.Tensor = self.network(x)
            return logits
        (out,) = self.session.run(None, {"pixels": x.numpy()})
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    @torch.inference_mode()
    def predict(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """Calibrated probabilities (canonical order) per crop; softmax averaged with the mirror if ``tta``."""
        if len(batch) == 0:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        x = normalize(torch.from_numpy(np.stack([to_input(c) for c in batch])))
        if self.tta:  # crops and their mirror images in one forward pass
            logits = self._logits(torch.cat([x, torch.flip(x, dims=[3])]))
            both = logits.softmax(dim=1)
            probs = (both[: len(batch)] + both[len(batch) :]) / 2
        else:
            probs = self._logits(x).softmax(dim=1)
        result: np.ndarray = probs.double().numpy()
        # Renormalise in float64 so every row sums to 1 to well within the schema's tolerance.
        normalised: np.ndarray = result / result.sum(axis=1, keepdims=True)
        return self.calibrator(normalised)


def build_network(meta: dict[str, Any]) -> nn.Module:
    """The architecture a weights file's metadata describes: one network, or an ensemble of ``members``."""
    members = meta.get("members")
    if members:
        return EmotionEnsemble([EmotionNet(tuple(member["widths"])) for member in members])
    return EmotionNet(tuple(meta["widths"]))


def load(
    path: str | Path,
    *,
    tta: bool | None = None,
    runtime: str = "torch",
    threads: int | None = None,
    cache_dir: Path | None = None,
    calibrated: bool = True,
) -> FaceEmotionModel:
    """Load weights from a model directory (or the .pt file itself).

    ``tta``: flip test-time augmentation; ``None`` = the file's own choice (metadata ``tta``, default on:
    an ensemble may be validated without it). ``runtime``: ``torch``, ``onnx`` or ``onnx-int8`` (the
    network exported once to ONNX, cached in ``cache_dir``, and run by onnxruntime with ``threads`` threads).
    ``calibrated``: apply the ``calibration.json`` beside the weights (absent: identity); off only to fit a new one.
    """
    file = Path(path)
    if file.is_dir():
        file = file / WEIGHTS_FILE
    if not file.is_file():
        raise ModelLoadError(f"weights file not found: {file}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
        meta = dict(state["meta"])
        if list(meta.get("labels", LABELS)) != list(LABELS):
            raise ModelLoadError(f"{file} was trained with labels {meta.get('labels')}, expected {list(LABELS)}")
        network = build_network(meta)
        network.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["state_dict"].items()})
    except ModelLoadError:
        raise
    except Exception as exc:  # a corrupt or incompatible file: say so instead of crashing the service
        raise ModelLoadError(f"could not load {file}: {exc}") from exc
    network.eval()
    model = FaceEmotionModel(
        network=network,
        name=str(meta.get("name", "face-emotion")),
        version=str(meta.get("version", "0")),
        tta=bool(meta.get("tta", True)) if tta is None else tta,
        meta=meta,
    )
    if runtime != "torch":
        model.session = _onnx_session(network, file, runtime=runtime, threads=threads, cache_dir=cache_dir)
        model.runtime = runtime
    if calibrated:
        try:
            model.calibrator = load_calibrator(file.parent)
        except CalibrationError as exc:
            raise ModelLoadError(str(exc)) from exc
    return model


def _onnx_session(
    network: torch.nn.Module, file: Path, *, runtime: str, threads: int | None, cache_dir: Path | None
) -> Any:
    """An onnxruntime session for ``network`` (whatever class it is: the export traces it on a sample batch)."""
    from shared import onnx_runtime

    if runtime not in onnx_runtime.RUNTIMES:
        raise ModelLoadError(f"unknown runtime {runtime!r}; expected one of {', '.join(onnx_runtime.RUNTIMES)}")
    key = onnx_runtime.artifact_key([file], runtime, onnx_runtime.EXPORT_VERSION)
    target = (cache_dir or onnx_runtime.default_cache_dir()) / f"image-{runtime}-{key}.onnx"

    def build() -> bytes:
        sample = torch.zeros(2, 1, INPUT_SIZE, INPUT_SIZE)
        data = onnx_runtime.export_bytes(
            network, (sample,), input_names=["pixels"], dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}}
        )
        return onnx_runtime.quantize_int8(data, ("Conv", "MatMul")) if runtime == "onnx-int8" else data

    try:
        return onnx_runtime.session(onnx_runtime.cached_onnx(target, build), threads=threads)
    except Exception as exc:  # an export or runtime failure must say which file, like a load failure
        raise ModelLoadError(f"could not run {file} with {runtime}: {exc}") from exc
