"""One timeline for a recording: fixed windows, each modality's evidence averaged into them, an overall.

Pure (no I/O): the services' timed outputs come in as :class:`Evidence` (a span or an instant with
seven probabilities); every window gets, per modality, the overlap-weighted mean of what falls in
it; the fused windows give the overall result weighted by their duration.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.labels import LABELS, Emotion, Modality

Vector = npt.NDArray[np.float64]

#: A tail shorter than this fraction of a window joins the previous window.
MIN_TAIL_FRACTION = 0.25


@dataclass(frozen=True)
class Window:
    """A stretch of the timeline, in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Evidence:
    """A modality's result over ``[start, end)``; ``end == start`` is an instant (a video frame)."""

    start: float
    end: float
    probabilities: Vector


def window_length(duration_s: float, *, window_s: float, max_windows: int) -> float:
    """``window_s``, widened so that ``duration_s`` needs at most ``max_windows`` windows."""
    if duration_s <= 0:
        return window_s
    return max(window_s, duration_s / max_windows)


def make_windows(duration_s: float, *, window_s: float, max_windows: int) -> list[Window]:
    """Consecutive windows covering ``[0, duration_s]``; a very short tail is merged into the last one."""
    if duration_s <= 0:
        return []
    length = window_length(duration_s, window_s=window_s, max_windows=max_windows)
    count = max(1, math.ceil(duration_s / length - 1e-9))
    bounds = [min(i * length, duration_s) for i in range(count)] + [duration_s]
    if count > 1 and bounds[-1] - bounds[-2] < MIN_TAIL_FRACTION * length:
        del bounds[-2]
    return [Window(round(a, 3), round(b, 3)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _normalised(vector: Vector) -> Vector:
    total = float(vector.sum())
    return np.asarray(vector / total if total > 0 else vector, dtype=np.float64)


def window_mean(items: Iterable[Evidence], window: Window, *, last: bool = False) -> Vector | None:
    """Mean of the evidence in ``window``: spans weighted by their overlap; else the instants' plain mean.

    Instants count when ``start <= t < end`` (the ``last`` window also takes ``t == end``); None when
    nothing falls in the window.
    """
    spans = np.zeros(len(LABELS), dtype=np.float64)
    span_weight = 0.0
    points = np.zeros(len(LABELS), dtype=np.float64)
    point_count = 0
    for item in items:
        if item.end <= item.start:
            if window.start <= item.start < window.end or (last and item.start == window.end):
                points += item.probabilities
                point_count += 1
            continue
        overlap = min(item.end, window.end) - max(item.start, window.start)
        if overlap > 0:
            spans += overlap * item.probabilities
            span_weight += overlap
    if span_weight > 0:
        return _normalised(spans / span_weight)
    if point_count:
        return _normalised(points / point_count)
    return None


def duration_weighted(parts: Sequence[tuple[float, Vector]]) -> Vector | None:
    """Mean of vectors weighted by their durations (renormalised), or None without any weight."""
    weights = np.array([max(0.0, d) for d, _ in parts], dtype=np.float64)
    if not parts or weights.sum() <= 0:
        return None
    stacked = np.stack([v for _, v in parts])
    return _normalised((stacked * weights[:, None]).sum(axis=0) / weights.sum())


def mean_of(items: Sequence[Evidence]) -> Vector | None:
    """A modality's overall: spans weighted by their length, instants (frames) equally; None if empty."""
    spans = [(e.end - e.start, e.probabilities) for e in items if e.end > e.start]
    if spans:
        return duration_weighted(spans)
    if items:
        return _normalised(np.mean(np.stack([e.probabilities for e in items]), axis=0))
    return None


def per_window(
    windows: Sequence[Window], evidence: Mapping[Modality, Sequence[Evidence]]
) -> list[dict[Modality, Vector]]:
    """For every window, each modality's mean (modalities with nothing in the window are left out)."""
    out: list[dict[Modality, Vector]] = []
    for index, window in enumerate(windows):
        present: dict[Modality, Vector] = {}
        for modality in (Modality.SPEECH, Modality.TEXT, Modality.IMAGE):
            mean = window_mean(evidence.get(modality, ()), window, last=index == len(windows) - 1)
            if mean is not None:
                present[modality] = mean
        out.append(present)
    return out


def to_probabilities(vector: Vector) -> dict[Emotion, float]:
    """A label-keyed dict, rounded for the wire and summing to 1."""
    return {Emotion(label): round(float(p), 6) for label, p in zip(LABELS, vector, strict=True)}


def top_label(vector: Vector) -> Emotion:
    """The most probable label."""
    return Emotion(LABELS[int(np.argmax(vector))])


def vector(probabilities: dict[Emotion, float] | dict[str, float]) -> Vector:
    """Label-keyed probabilities -> a vector in canonical order."""
    values = {str(k): float(v) for k, v in probabilities.items()}
    return np.array([values[label] for label in LABELS], dtype=np.float64)
