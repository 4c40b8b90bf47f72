"""Face detection and the image -> faces -> emotions pipeline on synthetic faces."""

import cv2
import numpy as np
import pytest

from services.image import model as face_model
from services.image.decoding import DecodedImage
from services.image.errors import NO_FACE_MESSAGE
from services.image.faces import FaceBox, FaceDetector
from services.image.pipeline import DetectMode, FaceResult, _primary, analyze_batch
from services.image.settings import ARTIFACT_DIR
from tests.image.synth import face_image, landscape_image


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def shipped() -> face_model.FaceEmotionModel:
    return face_model.load(ARTIFACT_DIR)


def grey(bgr: np.ndarray) -> DecodedImage:
    return DecodedImage(grey=cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), format="PNG")


def test_synthetic_face_is_found_where_it_was_drawn(detector: FaceDetector) -> None:
    (face,) = detector.detect(grey(face_image(320, 320, size=200)).grey)
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    assert abs(cx - 160) < 30
    assert abs(cy - 160) < 40
    assert 120 <= face.w <= 260
    assert face.confidence is not None
    assert 0.5 < face.confidence <= 1.0


def test_landscape_has_no_face(detector: FaceDetector) -> None:
    assert detector.detect(grey(landscape_image()).grey) == []


def test_large_image_is_downscaled_and_boxes_map_back(detector: FaceDetector) -> None:
    big = face_image(3000, 2000, size=900)
    (face,) = FaceDetector(max_side=800).detect(grey(big).grey)
    # The face was drawn centred at (1500, 1000) with a ~900 px high head.
    assert abs(face.x + face.w / 2 - 1500) < 120
    assert abs(face.y + face.h / 2 - 1000) < 150
    assert 500 <= face.w <= 1100


def test_one_face_classified_with_distribution(detector: FaceDetector, shipped: face_model.FaceEmotionModel) -> None:
    (result,) = analyze_batch([grey(face_image())], model=shipped, detector=detector)
    body = result.to_dict()
    assert len(body["faces"]) == 1
    assert body["message"] is None
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    assert (body["width"], body["height"]) == (320, 320)


def test_two_faces_side_by_side_largest_is_primary(
    detector: FaceDetector, shipped: face_model.FaceEmotionModel
) -> None:
    image = grey(np.concatenate([face_image(320, 320, size=160), face_image(320, 320, size=240)], axis=1))
    (result,) = analyze_batch([image], model=shipped, detector=detector)
    assert len(result.faces) == 2
    assert result.primary is not None
    primary_box = result.faces[result.primary].box
    assert primary_box.x > 320  # the bigger face was drawn on the right
    assert primary_box.area == max(f.box.area for f in result.faces)
    body = result.to_dict()
    assert body["label"] == body["faces"][result.primary]["label"]
    for face in body["faces"]:
        assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


def test_primary_face_policies() -> None:
    probs = np.full(7, 1 / 7)
    big_unsure = FaceResult(FaceBox(0, 0, 100, 100, 0.6), probs)
    small_sure = FaceResult(FaceBox(200, 0, 50, 50, 0.99), probs)
    assert _primary([big_unsure, small_sure], "largest") == 0
    assert _primary([big_unsure, small_sure], "most_confident") == 1
    assert _primary([], "largest") is None


def test_no_face_gives_null_label_and_message(detector: FaceDetector, shipped: face_model.FaceEmotionModel) -> None:
    (result,) = analyze_batch([grey(landscape_image())], model=shipped, detector=detector)
    body = result.to_dict()
    assert body["faces"] == []
    assert body["label"] is None
    assert body["probabilities"] is None
    assert body["message"] == NO_FACE_MESSAGE


def test_detect_modes_on_small_crop_and_scene(detector: FaceDetector, shipped: face_model.FaceEmotionModel) -> None:
    crop = DecodedImage(grey=np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8), format="PNG")
    scene = grey(landscape_image())
    auto_crop, auto_scene = analyze_batch([crop, scene], model=shipped, detector=detector, mode=DetectMode.AUTO)
    assert [(f.box.x, f.box.y, f.box.w, f.box.h, f.box.confidence) for f in auto_crop.faces] == [(0, 0, 48, 48, None)]
    assert auto_crop.message is None
    assert auto_scene.faces == []  # too big to be taken for a crop
    (always_crop,) = analyze_batch([crop], model=shipped, detector=detector, mode=DetectMode.ALWAYS)
    assert always_crop.faces == []
    (never_scene,) = analyze_batch([scene], model=shipped, detector=detector, mode=DetectMode.NEVER)
    assert len(never_scene.faces) == 1
    assert never_scene.faces[0].box.w == scene.width
