"""The detector comparison's plumbing (training/image/detection_eval.py, training/image/blazeface.py)."""

import numpy as np

from training.image.blazeface import MODELS, anchors
from training.image.detection_eval import make_detectors


def test_blazeface_anchors_match_the_models_outputs() -> None:
    # MediaPipe's SSD anchors: 896 for the 128 px short-range model, 2304 for the 192 px full-range one.
    for name, count in (("short", 896), ("full", 2304)):
        _, side, grids, _ = MODELS[name]
        centres = anchors(side, grids)
        assert centres.shape == (count, 2)
        assert 0 < centres.min() and centres.max() < 1
    short = anchors(128, MODELS["short"][2])
    # Stride 8 first (16x16 cells, 2 anchors each, row-major), then stride 16 (8x8 cells, 6 each).
    np.testing.assert_allclose(short[:3], [[0.5 / 16, 0.5 / 16]] * 2 + [[1.5 / 16, 0.5 / 16]])
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)


def test_detectors_by_name_and_side() -> None:
    detectors = make_detectors(["yunet", "yunet-native", "haar", "blazeface"], [800, 1280], None)
    # BlazeFace is left out without its model folder; several sides name each YuNet by its side.
    assert list(detectors) == ["yunet@800", "yunet@1280", "yunet-native@800", "haar"]
    assert list(make_detectors(["yunet"], [800], None)) == ["yunet"]
