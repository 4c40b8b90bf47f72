"""Whisper base (CTranslate2, int8 on the CPU) turning 16 kHz mono audio into timed transcript segments.

Pure: ``load(folder)`` and ``AsrModel.transcribe(batch)``, no FastAPI. The weights folder comes from
``shared.weights.materialise(WHISPER_BASE)``, which has already checked the pinned sha256.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

#: Whisper's input rate: every clip handed to :meth:`AsrModel.transcribe` is at this rate.
SAMPLE_RATE = 16_000
MODEL_NAME = "whisper-base-ct2"

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Segment:
    """A stretch of speech and its words."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    """One clip's transcription."""

    language: str
    language_probability: float
    duration_s: float
    segments: list[Segment]

    @property
    def text(self) -> str:
        """The segments' text joined by single spaces."""
        return " ".join(s.text for s in self.segments if s.text)


class AsrModel:
    """A loaded Whisper model with fixed decoding options (greedy by default: fastest on one core)."""

    def __init__(
        self, whisper: Any, *, name: str, version: str, language: str | None, beam_size: int, max_segment_s: float
    ) -> None:
        self._whisper = whisper
        self.name = name
        self.version = version
        self.language = language
        self.beam_size = beam_size
        self.max_segment_s = max_segment_s

    def transcribe(self, batch: list[FloatArray]) -> list[Transcript]:
        """Transcribe each 16 kHz mono float32 clip; an empty or silent clip gives no segments."""
        return [self._one(samples) for samples in batch]

    def _one(self, samples: FloatArray) -> Transcript:
        duration = samples.shape[0] / SAMPLE_RATE
        if samples.size == 0:
            return Transcript(self.language or "", 0.0, 0.0, [])
        raw_segments, info = self._whisper.transcribe(
            np.ascontiguousarray(samples, dtype=np.float32),
            language=self.language,
            beam_size=self.beam_size,
            # Each 30 s window on its own: no hallucinated carry-over between windows.
            condition_on_previous_text=False,
            vad_filter=False,
            without_timestamps=False,
        )
        segments: list[Segment] = []
        for raw in raw_segments:
            text = str(raw.text).strip()
            if not text:
                continue
            start = max(0.0, min(float(raw.start), duration))
            end = max(start, min(float(raw.end), duration))
            segments.extend(split_long(Segment(round(start, 3), round(end, 3), text), self.max_segment_s))
        return Transcript(
            language=str(info.language),
            language_probability=float(info.language_probability),
            duration_s=duration,
            segments=segments,
        )


def split_long(segment: Segment, max_s: float) -> list[Segment]:
    """Cut a segment longer than ``max_s`` into word-boundary pieces with proportional times.

    Whisper may return one segment for many seconds of speech; the text model then sees shorter,
    better-placed pieces on the timeline.
    """
    duration = segment.end - segment.start
    words = segment.text.split()
    if duration <= max_s or len(words) < 2:
        return [segment]
    pieces = min(len(words), int(np.ceil(duration / max_s)))
    bounds = np.linspace(0, len(words), pieces + 1).round().astype(int)
    chars = np.cumsum([0] + [len(w) + 1 for w in words])
    total = float(chars[-1])
    out: list[Segment] = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        if b <= a:
            continue
        start = segment.start + duration * float(chars[a]) / total
        end = segment.start + duration * float(chars[b]) / total
        out.append(Segment(round(start, 3), round(end, 3), " ".join(words[a:b])))
    return out


def load(
    model_dir: Path,
    *,
    version: str,
    threads: int = 1,
    compute_type: str = "int8",
    language: str | None = "en",
    beam_size: int = 1,
    max_segment_s: float = 8.0,
) -> AsrModel:
    """Load the CTranslate2 Whisper folder (``model.bin`` + tokenizer/vocabulary/config) on the CPU."""
    from faster_whisper import WhisperModel

    if not (model_dir / "model.bin").is_file():
        raise FileNotFoundError(f"no model.bin in the Whisper folder {model_dir.name!r}")
    whisper = WhisperModel(
        str(model_dir),
        device="cpu",
        compute_type=compute_type,
        cpu_threads=threads,
        num_workers=1,
        local_files_only=True,
    )
    return AsrModel(
        whisper,
        name=MODEL_NAME,
        version=f"{version}-{compute_type}",
        language=language,
        beam_size=beam_size,
        max_segment_s=max_segment_s,
    )
