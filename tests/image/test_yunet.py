"""YuNet on onnxruntime (services/image/yunet.py) gives libfacedetection's detections, in full-resolution pixels."""

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from services.image.faces import YuNetDetector
from services.image.yunet import Layer, decode, nms, read_layers
from training.image.scenes import background, match, paste_face


@pytest.fixture(scope="module")
def head() -> np.ndarray:
    """Grace Hopper's head (matplotlib's public-domain sample photo), 280x280 greyscale."""
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        grey = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_GRAYSCALE)
    return np.asarray(grey[90:370, 130:410])


@pytest.fixture(scope="module")
def onnx() -> YuNetDetector:
    return YuNetDetector(max_side=1280, runtime="onnx")


@pytest.fixture(scope="module")
def native() -> YuNetDetector:
    return YuNetDetector(max_side=1280, runtime="native")


def composed(head: np.ndarray, width: int, height: int, faces: list[tuple[int, int, int]], seed: int) -> np.ndarray:
    canvas = background(width, height, np.random.default_rng(seed))
    for i, box in enumerate(faces):
        paste_face(canvas, head, box, angle=(-1) ** i * 6.0 * i)
    return canvas


def test_weights_are_read_from_the_library(onnx: YuNetDetector) -> None:
    layers = read_layers(onnx.library)
    assert len(layers) == 53
    assert layers[0].weight.shape == (16, 32) and not layers[0].depthwise  # the 3x3x3 head as a 1x1 over 32
    assert layers[2].depthwise and layers[2].weight.shape == (16, 3, 3)
    assert all(np.isfinite(layer.weight).all() and np.isfinite(layer.bias).all() for layer in layers)
    assert isinstance(layers[-1], Layer) and layers[-1].weight.shape == (10, 3, 3)  # landmarks, stride 32


@pytest.mark.parametrize("seed", [0, 1])
def test_onnx_gives_the_native_detections(
    head: np.ndarray, onnx: YuNetDetector, native: YuNetDetector, seed: int
) -> None:
    grey = composed(head, 1280, 720, [(40, 60, 300), (420, 300, 200), (760, 100, 140), (1000, 420, 90)], seed)
    ours, theirs = onnx._raw(grey), native._raw(grey)
    ours, theirs = ours[ours[:, 0] >= 0.3], theirs[theirs[:, 0] >= 0.3]
    assert len(ours) == len(theirs) >= 4
    # The library truncates scores to 0.01 and coordinates to whole pixels; otherwise the numbers are the same.
    np.testing.assert_allclose(ours[:, 0], theirs[:, 0], atol=0.011)
    np.testing.assert_allclose(ours[:, 1:], theirs[:, 1:], atol=1.01)


def test_downscaled_detection_maps_boxes_and_landmarks_to_full_resolution(
    head: np.ndarray, onnx: YuNetDetector
) -> None:
    truth = [(300, 200, 600), (1500, 900, 360), (2100, 150, 240)]
    full = composed(head, 2560, 1440, truth, 4)
    for max_side in (640, 1280):
        faces = YuNetDetector(max_side=max_side).detect(full)  # detected at 1/4 and 1/2 of the photo's size
        matched = match(truth, [(f.x, f.y, f.w, f.h) for f in faces])
        assert all(m is not None for m in matched), (max_side, faces)
        for (x, y, side), m in zip(truth, matched, strict=True):
            assert m is not None
            face = faces[m]
            assert face.landmarks is not None
            for px, py in face.landmarks:  # full-resolution pixels, inside the pasted square
                assert x <= px <= x + side and y <= py <= y + side
    # The same face found at both scales lands in the same place (to within the network's own scale jitter).
    small = YuNetDetector(max_side=640).detect(full)[0]
    large = YuNetDetector(max_side=1280).detect(full)[0]
    assert small.landmarks is not None and large.landmarks is not None
    assert np.abs(np.asarray(small.landmarks) - np.asarray(large.landmarks)).max() < 0.1 * large.w


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10], [0, 0, 10, 4.4]], dtype=np.float64)
    # box 1 overlaps box 0 with IoU 0.68 (> 0.45); box 3 lies inside box 0 with IoU 0.44 (kept).
    assert nms(boxes, 0.45) == [0, 2, 3]


def test_decode_places_a_single_anchor_hit() -> None:
    maps = [np.full((1, 16, s, s), -20.0, np.float32) for s in (8, 4, 2)]  # a 64x64 input
    maps[1][0, :, 2, 1] = 0.0  # stride 16, anchor at (16, 32): scores sigmoid(0) = 0.5
    maps[1][0, 2:4, 2, 1] = 0.5  # centre offset (8, 8)
    maps[1][0, 4:6, 2, 1] = np.log(2.0)  # 32 x 32 px
    (row,) = decode(maps, 0.2)
    np.testing.assert_allclose(row[:5], [0.5, 16 + 8 - 16, 32 + 8 - 16, 32, 32], atol=1e-5)
    np.testing.assert_allclose(row[5:], [16, 32] * 5, atol=1e-5)  # zero offsets: every landmark on the anchor
    assert decode(maps, 0.6).shape == (0, 15)
