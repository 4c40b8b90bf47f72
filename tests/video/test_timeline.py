"""Timeline arithmetic: windows, per-window means of spans and instants, duration-weighted overall."""

import numpy as np
import pytest

from services.gateway.timeline import (
    Evidence,
    Window,
    duration_weighted,
    make_windows,
    mean_of,
    per_window,
    to_probabilities,
    top_label,
    window_mean,
)
from shared.labels import LABELS, Modality


def one_hot(label: str) -> np.ndarray:
    v = np.full(len(LABELS), 0.0)
    v[LABELS.index(label)] = 1.0
    return v


def test_windows_cover_the_recording_and_a_short_tail_joins_the_last() -> None:
    assert make_windows(5.0, window_s=2.0, max_windows=100) == [Window(0, 2), Window(2, 4), Window(4, 5)]
    assert make_windows(4.3, window_s=2.0, max_windows=100) == [Window(0, 2), Window(2, 4.3)]
    assert make_windows(1.2, window_s=2.0, max_windows=100) == [Window(0, 1.2)]
    assert make_windows(0.0, window_s=2.0, max_windows=100) == []


def test_the_window_count_is_bounded_by_widening_windows() -> None:
    windows = make_windows(600.0, window_s=2.0, max_windows=50)
    assert len(windows) == 50
    assert windows[0].duration == pytest.approx(12.0)
    assert windows[-1].end == 600.0


def test_spans_are_weighted_by_their_overlap_with_the_window() -> None:
    items = [Evidence(0.0, 1.5, one_hot("happy")), Evidence(1.5, 3.0, one_hot("sad"))]
    mean = window_mean(items, Window(0.0, 2.0))
    assert mean is not None
    assert mean[LABELS.index("happy")] == pytest.approx(0.75)
    assert mean[LABELS.index("sad")] == pytest.approx(0.25)
    assert window_mean(items, Window(3.0, 4.0)) is None


def test_instants_count_in_their_window_only() -> None:
    frames = [
        Evidence(0.0, 0.0, one_hot("angry")),
        Evidence(1.0, 1.0, one_hot("happy")),
        Evidence(2.0, 2.0, one_hot("sad")),
    ]
    first = window_mean(frames, Window(0.0, 2.0))
    assert first is not None and first[LABELS.index("angry")] == pytest.approx(0.5)
    assert window_mean([Evidence(2.0, 2.0, one_hot("sad"))], Window(0.0, 2.0)) is None
    assert window_mean([Evidence(2.0, 2.0, one_hot("sad"))], Window(0.0, 2.0), last=True) is not None
    last = window_mean(frames, Window(2.0, 3.0))
    assert last is not None and top_label(last) == "sad"


def test_per_window_leaves_out_modalities_with_nothing_in_the_window() -> None:
    windows = [Window(0, 2), Window(2, 4)]
    evidence = {
        Modality.SPEECH: [Evidence(0.5, 1.5, one_hot("fear"))],
        Modality.IMAGE: [Evidence(3.0, 3.0, one_hot("happy"))],
    }
    present = per_window(windows, evidence)
    assert list(present[0]) == [Modality.SPEECH]
    assert list(present[1]) == [Modality.IMAGE]


def test_overall_is_duration_weighted_and_sums_to_one() -> None:
    overall = duration_weighted([(2.0, one_hot("happy")), (0.5, one_hot("sad"))])
    assert overall is not None
    assert overall.sum() == pytest.approx(1.0)
    assert overall[LABELS.index("happy")] == pytest.approx(0.8)
    assert duration_weighted([]) is None


def test_a_modality_mean_weights_spans_by_length_and_frames_equally() -> None:
    spans = mean_of([Evidence(0, 3, one_hot("happy")), Evidence(3, 4, one_hot("sad"))])
    assert spans is not None and spans[LABELS.index("happy")] == pytest.approx(0.75)
    frames = mean_of([Evidence(0, 0, one_hot("happy")), Evidence(1, 1, one_hot("sad"))])
    assert frames is not None and frames[LABELS.index("sad")] == pytest.approx(0.5)
    assert mean_of([]) is None


def test_wire_probabilities_keep_the_label_order() -> None:
    probabilities = to_probabilities(one_hot("neutral"))
    assert list(probabilities) == list(LABELS)
    assert probabilities["neutral"] == 1.0
