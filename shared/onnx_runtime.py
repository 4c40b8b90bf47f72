"""ONNX Runtime serving for the PyTorch models (text, image): export once (cached on disk), run without autograd.

The PyTorch network stays the source of truth (training, export); a service runs the same graph
in onnxruntime, which measures faster on CPU (see the text and image model cards, "Serving
runtime"). ``onnx-int8`` additionally quantizes the weights to int8 (dynamic quantization).
torch and onnxruntime are imported only when used: only the services that serve ONNX install them.

The exported file is keyed by a hash of the artefact files, the runtime variant and the exporter
version, so a retrained model is never served from a stale export.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

Runtime = Literal["torch", "onnx", "onnx-int8"]
RUNTIMES: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
#: Bump when the export recipe changes, so old cached files are not reused (2: int8 per channel, 7-bit range).
EXPORT_VERSION = "2"
OPSET = 17


def default_cache_dir() -> Path:
    """``$ONNX_CACHE_DIR``, else a folder in the system temp dir (writable in every container)."""
    return Path(os.environ.get("ONNX_CACHE_DIR") or Path(tempfile.gettempdir()) / "emotion-onnx")


def artifact_key(files: Iterable[Path], *extra: str) -> str:
    """A short hash of the files' bytes and ``extra`` strings."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


def cached_onnx(path: Path, build: Callable[[], bytes]) -> bytes:
    """The ONNX bytes at ``path``, building (and atomically writing) them first if missing.

    An unwritable cache only costs the export at every start, never the service. The file is
    readable by everyone (not the temporary file's 0600): an image build writes it as root
    for a service that runs as another user.
    """
    if path.is_file():
        return path.read_bytes()
    data = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".part") as handle:
            handle.write(data)
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except OSError:
        pass
    return data


def export_bytes(module: Any, args: tuple[Any, ...], *, input_names: list[str], dynamic_axes: dict[str, Any]) -> bytes:
    """``torch.onnx.export`` (TorchScript exporter: no onnxscript needed) into memory."""
    import torch

    buffer = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            module,
            args,
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to any binary file object
            dynamo=False,
            input_names=input_names,
            output_names=["logits"],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
        )
    return buffer.getvalue()


def quantize_int8(fp32: bytes, op_types: tuple[str, ...] = ("MatMul",), *, keep_fp32: tuple[str, ...] = ()) -> bytes:
    """Dynamic int8 quantization of the ``op_types`` weights (activations quantized per call).

    Nodes whose name contains one of ``keep_fp32`` stay in float32 (e.g. a layer whose
    quantization error costs more accuracy than its speed-up is worth).

    Weights are quantized per output channel and to 7 bits (``reduce_range``): without VNNI,
    onnxruntime multiplies uint8 activations by int8 weights with AVX2's pairwise
    multiply-add, whose 16-bit sums saturate on full-range weights. On the AVX2-only EPYC
    that saturation cost MiniLM 1.15 accuracy points on dair-ai; with 7-bit weights (and layer 0
    kept) every validation metric is within 0.5 points of fp32 (text MODEL_CARD.md, "Serving runtime").
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(fp32)
        # Parsing the graph for node names costs a second copy of the model: only when something is kept.
        excluded = [n.name for n in _graph(fp32).node if any(part in n.name for part in keep_fp32)] if keep_fp32 else []
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(op_types),
            nodes_to_exclude=excluded,
            per_channel=True,
            reduce_range=True,
        )
        return target.read_bytes()


def _graph(model: bytes) -> Any:
    import onnx

    return onnx.load_from_string(model).graph


def session(model: bytes, *, threads: int | None) -> Any:
    """An onnxruntime CPU session using ``threads`` intra-op threads and one inter-op thread.

    ``threads`` should not exceed the container's CPU quota (``INFERENCE_THREADS``); the
    graph is sequential, so inter-op parallelism would only add contention.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads burn a core between calls; on a shared CPU quota that costs more than it saves.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
