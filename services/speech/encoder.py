"""The pretrained Whisper-base encoder that turns a speech window into pooled hidden states.

The weights are the hash-pinned ``shared.weights.WHISPER_BASE`` copy: :func:`load_encoder` refuses
to start from a file whose sha256 is not the pinned one (``shared.weights.WeightsError``). The
network is read into NumPy (``services.speech.whisper_numpy``) so that any layer can be read, not only
the last one CTranslate2's ``encode()`` returns, and runs either there or, by default, as the same
graph on onnxruntime (``services.speech.whisper_onnx``: ~1.35x faster on one core, ~1.9x on two).
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.speech.features import WhisperMelParams, whisper_logmel
from services.speech.whisper_numpy import NumpyWhisperEncoder, read_ct2_variables
from services.speech.whisper_onnx import OnnxWhisperEncoder
from shared.weights import WHISPER_BASE, materialise

FloatArray = npt.NDArray[np.float32]

#: Width of Whisper-base's hidden states.
HIDDEN_SIZE = 512
#: Where the encoder runs: "onnx" (onnxruntime) or "numpy" (the reference the training cache is built with).
#: Both run float32: int8 matrix weights cost 3.3 points of accuracy on actors 17-20 (model card).
RUNTIMES = ("onnx", "numpy")
#: Most windows in one encoder pass. Per window, onnxruntime on 2 threads takes 62 ms alone, 56 ms
#: in fours and 65-71 ms in eights or sixteens (activations outgrow the caches), NumPy likewise.
MAX_WINDOWS_PER_PASS = 4
#: Layer index meaning "the encoder's final output" (last block + final layer norm, what CTranslate2 returns).
FINAL = -1


class WhisperEncoder:
    """Pooled states of chosen encoder layers for one mono 16 kHz window (no 30 s padding)."""

    def __init__(
        self, network: NumpyWhisperEncoder | OnnxWhisperEncoder, params: WhisperMelParams, *, folder: Path
    ) -> None:
        self.network = network
        self.params = params
        self.folder = folder

    @property
    def num_layers(self) -> int:
        return self.network.num_layers

    def pooled_layers(self, segment: npt.NDArray[np.floating[Any]], layers: Sequence[int]) -> FloatArray:
        """(len(layers), 1024): mean and std over time of each named layer (0 = embeddings, FINAL = output)."""
        return self.pooled_layers_batch([segment], layers)[0]

    def pooled_layers_batch(
        self, segments: Sequence[npt.NDArray[np.floating[Any]]], layers: Sequence[int]
    ) -> list[FloatArray]:
        """:meth:`pooled_layers` for many windows: windows of the same length share one batched pass."""
        return [np.stack([pool(h) for h in states]) for states in self.layer_states_batch(segments, layers)]

    def layer_states_batch(
        self, segments: Sequence[npt.NDArray[np.floating[Any]]], layers: Sequence[int]
    ) -> list[FloatArray]:
        """(len(layers), frames, 512) hidden states of the named layers for each window, in order.

        Served windows are mostly exactly 3 s, so concurrent requests' windows go through each weight
        matrix together, up to :data:`MAX_WINDOWS_PER_PASS` at a time.
        """
        mels = [whisper_logmel(s, self.params) for s in segments]
        deepest = blocks_needed(layers)
        out: list[FloatArray | None] = [None] * len(mels)
        by_length: dict[int, list[int]] = {}
        for i, mel in enumerate(mels):
            by_length.setdefault(mel.shape[1], []).append(i)
        groups = [
            same[k : k + MAX_WINDOWS_PER_PASS]
            for same in by_length.values()
            for k in range(0, len(same), MAX_WINDOWS_PER_PASS)
        ]
        for indices in groups:
            states = self.network.layers(np.stack([mels[i] for i in indices]), upto=deepest)
            for row, i in enumerate(indices):
                out[i] = np.stack(
                    [self.network.final(states[-1][row]) if layer == FINAL else states[layer][row] for layer in layers]
                ).astype(np.float32, copy=False)
        return [s for s in out if s is not None]


def blocks_needed(layers: Sequence[int]) -> int | None:
    """Encoder blocks that must run to read ``layers`` (None: every loaded block, as FINAL needs)."""
    return None if FINAL in layers else max(layers)


def pool(hidden: FloatArray) -> FloatArray:
    """Mean and standard deviation over time: a (2 * 512,) summary of a window's hidden states."""
    pooled: FloatArray = np.concatenate([hidden.mean(axis=0), hidden.std(axis=0)]).astype(np.float32)
    return pooled


def frame_means(states: FloatArray, stride: int) -> FloatArray:
    """(..., frames, d) -> (..., ceil(frames / stride), d): means of ``stride`` consecutive frames (last: the rest)."""
    frames = states.shape[-2]
    starts = np.arange(0, frames, stride)
    sums = np.add.reduceat(states, starts, axis=-2)
    counts = np.minimum(starts + stride, frames) - starts
    out: FloatArray = (sums / counts[:, None]).astype(np.float32)
    return out


def pad_frames(windows: Sequence[FloatArray], length: int | None = None) -> FloatArray:
    """(n, length, d) zero-padded stack of (frames, d) windows (padding marks itself: states are never all zero)."""
    length = length or max(len(w) for w in windows)
    out = np.zeros((len(windows), length, windows[0].shape[1]), dtype=windows[0].dtype)
    for i, w in enumerate(windows):
        out[i, : len(w)] = w[:length]
    return out


def combine_layers(pooled: FloatArray, how: str) -> FloatArray:
    """(layers, 1024) pooled states -> one vector: their mean (1024,) or their concatenation."""
    out: FloatArray = pooled.mean(axis=0) if how == "mean" else pooled.reshape(-1)
    return out


def load_encoder(
    *,
    cache_dir: Path | None = None,
    params: WhisperMelParams | None = None,
    num_layers: int | None = None,
    runtime: str = "numpy",
    threads: int = 1,
) -> WhisperEncoder:
    """Assemble and verify the pinned weights (WeightsError if they are not the pinned file), then load them.

    ``num_layers``: load only the first blocks (a head that reads a middle layer never needs the rest).
    ``runtime``: one of :data:`RUNTIMES`; ``threads``: onnxruntime's intra-op threads (NumPy's BLAS
    threads are set by the caller with threadpoolctl).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown encoder runtime {runtime!r} (one of {', '.join(RUNTIMES)})")
    folder = materialise(WHISPER_BASE, cache_dir)
    network = NumpyWhisperEncoder(read_ct2_variables(folder / WHISPER_BASE.filename), num_layers=num_layers)
    runner = OnnxWhisperEncoder(network, threads=threads) if runtime == "onnx" else network
    return WhisperEncoder(runner, params or WhisperMelParams(), folder=folder)
