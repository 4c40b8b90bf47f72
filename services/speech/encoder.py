"""The pretrained Whisper-base encoder (CTranslate2) that turns a speech window into hidden states.

The weights are the hash-pinned ``shared.weights.WHISPER_BASE`` copy: :func:`load_encoder` refuses
to start from a file whose sha256 is not the pinned one (``shared.weights.WeightsError``).
"""

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.speech.features import WhisperMelParams, whisper_logmel
from shared.weights import WHISPER_BASE, materialise

FloatArray = npt.NDArray[np.float32]

#: Width of Whisper-base's hidden states.
HIDDEN_SIZE = 512


class WhisperEncoder:
    """``hidden_states(segment)`` -> (frames / 2, 512) last-layer states of Whisper-base's encoder."""

    def __init__(self, model: Any, params: WhisperMelParams, *, folder: Path) -> None:
        self.model = model
        self.params = params
        self.folder = folder

    def hidden_states(self, segment: npt.NDArray[np.floating[Any]]) -> FloatArray:
        """The encoder's output for one mono 16 kHz window (no 30 s padding)."""
        import ctranslate2

        mel = whisper_logmel(segment, self.params)
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))
        out: FloatArray = np.asarray(self.model.encode(features, to_cpu=True), dtype=np.float32)[0]
        return out


def pool(hidden: FloatArray) -> FloatArray:
    """Mean and standard deviation over time: a (2 * 512,) summary of a window's hidden states."""
    pooled: FloatArray = np.concatenate([hidden.mean(axis=0), hidden.std(axis=0)]).astype(np.float32)
    return pooled


def load_encoder(
    *,
    cache_dir: Path | None = None,
    threads: int = 1,
    compute_type: str = "float32",
    params: WhisperMelParams | None = None,
) -> WhisperEncoder:
    """Assemble and verify the pinned weights (WeightsError if they are not the pinned file), then load them."""
    import ctranslate2

    folder = materialise(WHISPER_BASE, cache_dir)
    model = ctranslate2.models.Whisper(
        str(folder), device="cpu", compute_type=compute_type, intra_threads=threads, inter_threads=1
    )
    return WhisperEncoder(model, params or WhisperMelParams(), folder=folder)
