"""Uploaded bytes -> overall probabilities and a per-segment timeline (pure; service and CLI share it)."""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.speech.audio import Segment, check_batch, decode, segment
from services.speech.errors import SILENT_DETAIL, NoSpeech
from services.speech.model import SpeechModel
from shared.errors import ServiceError


@dataclass(frozen=True)
class SegmentResult:
    """One classified window of a clip."""

    start: float
    end: float
    probabilities: npt.NDArray[np.float64]


@dataclass(frozen=True)
class ClipResult:
    """A whole clip: duration-weighted mean over its speech windows, and the windows."""

    duration_s: float
    probabilities: npt.NDArray[np.float64]
    segments: list[SegmentResult]


def prepare(data: bytes, *, model: SpeechModel, max_duration_s: float) -> tuple[float, list[Segment]]:
    """Decode one upload and cut it into speech windows (raises the service's domain errors)."""
    y = decode(data, sample_rate=model.sample_rate, max_duration_s=max_duration_s)
    segments = segment(y, sample_rate=model.sample_rate, params=model.segmentation)
    return y.shape[0] / model.sample_rate, segments


def combine(segments: list[Segment], probabilities: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Duration-weighted mean of segment probabilities, renormalised to sum to 1."""
    weights = np.array([s.duration for s in segments], dtype=np.float64)
    if weights.sum() <= 0:
        raise NoSpeech(SILENT_DETAIL)
    overall = (probabilities * weights[:, None]).sum(axis=0) / weights.sum()
    return np.asarray(overall / overall.sum(), dtype=np.float64)


def analyse(
    clips: list[bytes], *, model: SpeechModel, max_duration_s: float, names: list[str] | None = None
) -> list[ClipResult]:
    """Classify a batch of uploads with one model call over all their windows.

    A bad item raises its domain error; given ``names``, with the item's index and name in the message.
    """
    prepared = prepare_all(clips, model=model, max_duration_s=max_duration_s, names=names)
    flat = [seg.samples for _, segments in prepared for seg in segments]
    return finish(prepared, model.predict(flat))


def prepare_all(
    clips: list[bytes], *, model: SpeechModel, max_duration_s: float, names: list[str] | None = None
) -> list[tuple[float, list[Segment]]]:
    """:func:`prepare` for each upload; a bad one raises, named by index (and file name) when ``names``."""
    check_batch(clips, max_duration_s=max_duration_s)  # total duration from the headers, before decoding
    prepared: list[tuple[float, list[Segment]]] = []
    for i, data in enumerate(clips):
        try:
            prepared.append(prepare(data, model=model, max_duration_s=max_duration_s))
        except ServiceError as exc:
            if names is None:
                raise
            label = f"audio[{i}]" + (f" ({names[i]})" if names[i] else "")
            raise type(exc)(f"{label}: {exc.detail}") from exc
    return prepared


def finish(prepared: list[tuple[float, list[Segment]]], probabilities: npt.NDArray[np.float64]) -> list[ClipResult]:
    """Clip results from the prepared clips and the probabilities of all their windows, in order."""
    results: list[ClipResult] = []
    offset = 0
    for duration, segments in prepared:
        rows = probabilities[offset : offset + len(segments)]
        offset += len(segments)
        results.append(
            ClipResult(
                duration_s=duration,
                probabilities=combine(segments, rows),
                segments=[
                    SegmentResult(start=s.start, end=s.end, probabilities=p)
                    for s, p in zip(segments, rows, strict=True)
                ],
            )
        )
    return results
