"""Whisper-base's encoder in NumPy, read from the verified CTranslate2 ``model.bin``, every layer exposed.

CTranslate2's ``Whisper.encode()`` returns only the last layer, but emotion lives mostly in the
middle layers (the last ones are tuned for transcription). This is the same network (two GELU
convolutions, sinusoidal positions, pre-norm self-attention blocks), computed with NumPy's BLAS in
float32 from the same pinned weights; ``tests/speech/test_whisper_numpy.py`` checks that its last
layer matches CTranslate2's. Layers above the deepest one the head reads are never computed.
"""

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

#: CTranslate2's DataType enum order (include/ctranslate2/types.h).
_DTYPES: dict[int, Any] = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class ModelFileError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


def read_ct2_variables(path: Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` whose names start with ``prefix``, as NumPy arrays."""
    with path.open("rb") as f:
        buf = memoryview(f.read())
    offset = 0

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal offset
        values = struct.unpack_from("<" + fmt, buf, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    def string() -> str:
        nonlocal offset
        (n,) = take("H")
        text = bytes(buf[offset : offset + n - 1]).decode("utf-8")
        offset += n
        return text

    try:
        (version,) = take("I")
        if version < 5:
            raise ModelFileError(f"unsupported CTranslate2 binary version {version}")
        string()  # spec name
        take("I")  # spec revision
        (count,) = take("I")
        out: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = string()
            (rank,) = take("B")
            shape = take("I" * rank)
            (dtype_id,) = take("B")
            (size,) = take("I")
            if name.startswith(prefix):
                if dtype_id not in _DTYPES:
                    raise ModelFileError(f"{name}: unsupported dtype id {dtype_id}")
                data = np.frombuffer(buf[offset : offset + size], dtype=_DTYPES[dtype_id])
                out[name[len(prefix) :]] = data.reshape(shape).copy()
            offset += size
    except struct.error as exc:
        raise ModelFileError(f"{path.name} is truncated: {exc}") from exc
    return out


def _gelu(x: FloatArray) -> FloatArray:
    """Exact (erf) GELU, erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), computed in place.

    SciPy's ``erf`` took a quarter of the encoder's time (about 5 ms per 150 x 2048 block on one
    core); this takes about 1 ms and agrees with it to float32 precision.
    """
    sign = np.sign(x)
    z = np.abs(x)
    z *= np.float32(1.0 / math.sqrt(2.0))
    decay = np.multiply(z, z)
    np.negative(decay, out=decay)
    np.exp(decay, out=decay)
    t = z
    t *= np.float32(0.3275911)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    tail = np.multiply(t, np.float32(1.061405429))  # tail = 1 - erf(|x|)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        tail += np.float32(coefficient)
        tail *= t
    tail *= decay
    tail *= sign  # 1 + erf(x) = 1 + sign - sign * tail
    np.subtract(sign, tail, out=tail)
    tail += np.float32(1.0)
    tail *= x
    tail *= np.float32(0.5)
    return tail


def _layer_norm(x: FloatArray, gamma: FloatArray, beta: FloatArray, eps: float = 1e-5) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out: FloatArray = (x - mean) / np.sqrt(var + eps) * gamma + beta
    return out


def _conv1d(x: FloatArray, weight: FloatArray, bias: FloatArray, stride: int) -> FloatArray:
    """(batch, frames, in) -> (batch, frames', out), kernel 3, padding 1, one matmul over stacked shifted views."""
    padded = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    n_out = (x.shape[1] - 1) // stride + 1
    cols = np.concatenate([padded[:, k : k + stride * (n_out - 1) + 1 : stride] for k in range(3)], axis=2)
    out: FloatArray = cols @ weight + bias
    return out


def _stacked_kernel(weight: FloatArray) -> FloatArray:
    """(out, in, 3) convolution weights -> (3 * in, out), matching :func:`_conv1d`'s stacked views."""
    out: FloatArray = np.ascontiguousarray(weight.transpose(2, 1, 0).reshape(-1, weight.shape[0]))
    return out


@dataclass(frozen=True)
class _Block:
    ln1: tuple[FloatArray, FloatArray]
    qkv: tuple[FloatArray, FloatArray]
    out: tuple[FloatArray, FloatArray]
    ln2: tuple[FloatArray, FloatArray]
    fc1: tuple[FloatArray, FloatArray]
    fc2: tuple[FloatArray, FloatArray]


class NumpyWhisperEncoder:
    """``layers(mel, upto)`` -> hidden states after the embedding (0) and after each block (1..upto)."""

    def __init__(self, variables: dict[str, np.ndarray], *, num_layers: int | None = None) -> None:
        def f32(name: str) -> FloatArray:
            return np.ascontiguousarray(variables[name], dtype=np.float32)

        def linear(name: str) -> tuple[FloatArray, FloatArray]:
            return np.ascontiguousarray(f32(f"{name}/weight").T), f32(f"{name}/bias")

        def norm(name: str) -> tuple[FloatArray, FloatArray]:
            return f32(f"{name}/gamma"), f32(f"{name}/beta")

        self.num_heads = int(variables["num_heads"])
        depth = sum(1 for name in variables if name.endswith("self_attention/linear_0/weight"))
        self.depth = depth
        self.num_layers = depth if num_layers is None else min(num_layers, depth)
        # Conv weights (out, in, k) -> (k * in, out) to match the stacked shifted views.
        self.conv = [(_stacked_kernel(f32(f"conv{i}/weight")), f32(f"conv{i}/bias")) for i in (1, 2)]
        self.positions = f32("position_encodings/encodings")
        self.blocks = [
            _Block(
                ln1=norm(f"layer_{i}/self_attention/layer_norm"),
                qkv=linear(f"layer_{i}/self_attention/linear_0"),
                out=linear(f"layer_{i}/self_attention/linear_1"),
                ln2=norm(f"layer_{i}/ffn/layer_norm"),
                fc1=linear(f"layer_{i}/ffn/linear_0"),
                fc2=linear(f"layer_{i}/ffn/linear_1"),
            )
            for i in range(self.num_layers)
        ]
        self.final_norm = norm("layer_norm")
        self.width = self.positions.shape[1]

    def _attention(self, x: FloatArray, block: _Block) -> FloatArray:
        b, t, _ = x.shape
        heads = self.num_heads
        d = self.width // heads
        qkv = x @ block.qkv[0] + block.qkv[1]
        q, k, v = (
            qkv[..., i * self.width : (i + 1) * self.width].reshape(b, t, heads, d).transpose(0, 2, 1, 3)
            for i in range(3)
        )
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / math.sqrt(d))
        scores -= scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(b, t, self.width)
        out: FloatArray = context @ block.out[0] + block.out[1]
        return out

    def layers(self, mel: FloatArray, upto: int | None = None) -> list[FloatArray]:
        """Hidden states for layers 0..upto of a (n_mels, frames) log-mel input, or of a batch of them.

        One input gives (frames / 2, width) per layer; a (batch, n_mels, frames) stack of inputs with
        the same length gives (batch, frames / 2, width): one matrix product per weight for all of them.
        """
        upto = self.num_layers if upto is None else min(upto, self.num_layers)
        single = mel.ndim == 2
        batch = np.ascontiguousarray((mel[None] if single else mel).transpose(0, 2, 1), dtype=np.float32)
        x = _gelu(_conv1d(batch, *self.conv[0], stride=1))
        x = _gelu(_conv1d(x, *self.conv[1], stride=2))
        x = (x + self.positions[: x.shape[1]]).astype(np.float32)
        states = [x]
        for block in self.blocks[:upto]:
            x = x + self._attention(_layer_norm(x, *block.ln1), block)
            h = _gelu(_layer_norm(x, *block.ln2) @ block.fc1[0] + block.fc1[1])
            x = (x + h @ block.fc2[0] + block.fc2[1]).astype(np.float32)
            states.append(x)
        return [h[0] for h in states] if single else states

    def final(self, last: FloatArray) -> FloatArray:
        """The final layer norm applied to the last block's states."""
        return _layer_norm(last, *self.final_norm)

    def output(self, mel: FloatArray) -> FloatArray:
        """The encoder's final output (last block + final layer norm), as CTranslate2's ``encode()`` gives it."""
        if self.num_layers != self.depth:
            raise ValueError(f"output() needs all {self.depth} blocks, {self.num_layers} loaded")
        return self.final(self.layers(mel)[-1])
