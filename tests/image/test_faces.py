"""YuNet detection and landmark alignment on a real photo (matplotlib's public-domain grace_hopper.jpg)."""

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from services.image import model as face_model
from services.image.decoding import DecodedImage
from services.image.faces import (
    FER_TEMPLATE_48,
    LANDMARK_NAMES,
    FaceDetector,
    HaarDetector,
    YuNetDetector,
    aligned_crop,
    roll_degrees,
    similarity_transform,
)
from services.image.pipeline import DetectMode, PipelineConfig, analyze_batch, face_crop
from services.image.settings import ARTIFACT_DIR
from tests.image.synth import landscape_image
from training.image.scenes import background, match


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    """Rear Admiral Grace Hopper (US Navy photo, public domain), 512x600 greyscale, one frontal face."""
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        data = np.frombuffer(handle.read(), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


def rotate(grey: np.ndarray, degrees: float) -> np.ndarray:
    """``grey`` rotated counter-clockwise about its centre, same size."""
    h, w = grey.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(grey, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def test_one_face_with_five_landmarks_in_place(hopper: np.ndarray, yunet: YuNetDetector) -> None:
    (face,) = yunet.detect(hopper)
    assert face.confidence is not None and face.confidence > 0.8
    assert face.landmarks is not None and len(face.landmarks) == len(LANDMARK_NAMES) == 5
    (elx, ely), (erx, ery), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    # Image-left eye left of the image-right eye, nose below the eyes, mouth below the nose.
    assert elx < nx < erx
    assert max(ely, ery) < ny < min(mly, mry)
    assert mlx < mrx
    for x, y in face.landmarks:
        assert face.x <= x <= face.x + face.w and face.y <= y <= face.y + face.h


def test_several_faces_in_a_composed_photo_are_all_found(hopper: np.ndarray, yunet: YuNetDetector) -> None:
    rng = np.random.default_rng(3)
    canvas = background(1280, 720, rng)
    head = hopper[90:370, 130:410]  # 280x280 around the face
    truth = []
    for x, y, side in ((60, 120, 300), (480, 300, 180), (860, 80, 110), (1100, 500, 70)):
        canvas[y : y + side, x : x + side] = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA)
        truth.append((x, y, side))
    faces = yunet.detect(canvas)
    matched = match(truth, [(f.x, f.y, f.w, f.h) for f in faces])
    assert all(m is not None for m in matched), (truth, faces)
    assert len(faces) == len(truth)
    assert [f.area for f in faces] == sorted((f.area for f in faces), reverse=True)


@pytest.mark.parametrize("degrees", [-25.0, 20.0])
def test_rotated_face_is_found_and_aligned_upright(hopper: np.ndarray, yunet: YuNetDetector, degrees: float) -> None:
    (upright,) = yunet.detect(hopper)
    (turned,) = yunet.detect(rotate(hopper, degrees))
    assert upright.landmarks is not None and turned.landmarks is not None
    # cv2 turns counter-clockwise for positive angles: the eye line tilts by -degrees in image coordinates
    # (YuNet's landmarks under-estimate large tilts, hence the loose bound).
    tilt = roll_degrees(turned.landmarks) - roll_degrees(upright.landmarks)
    assert 0.5 * abs(degrees) < abs(tilt) < 1.5 * abs(degrees)
    assert np.sign(tilt) == -np.sign(degrees)
    reference = aligned_crop(hopper, upright.landmarks)
    aligned = aligned_crop(rotate(hopper, degrees), turned.landmarks)
    assert aligned.shape == (48, 48)
    image = DecodedImage(rotate(hopper, degrees), "PNG")
    boxed = cv2.resize(face_crop(image, turned, PipelineConfig(align=False)), (48, 48), interpolation=cv2.INTER_AREA)
    # The aligned crop of the turned photo looks like the upright one; the plain box crop does not.
    assert correlation(aligned, reference) > 0.6
    assert correlation(aligned, reference) > correlation(boxed, reference) + 0.2


def test_aligned_crop_puts_landmarks_on_the_template(hopper: np.ndarray, yunet: YuNetDetector) -> None:
    (face,) = yunet.detect(hopper)
    assert face.landmarks is not None
    matrix = similarity_transform(np.asarray(face.landmarks), np.asarray(FER_TEMPLATE_48))
    mapped = np.hstack([np.asarray(face.landmarks), np.ones((5, 1))]) @ matrix.T
    assert np.abs(mapped - np.asarray(FER_TEMPLATE_48)).max() < 3.0  # pixels of the 48x48 crop


def test_similarity_transform_recovers_a_known_one() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = np.radians(30), 0.4, np.array([7.0, -3.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = scale * points @ rotation.T + shift
    matrix = similarity_transform(points, target)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_photos_without_faces_give_nothing(yunet: YuNetDetector, seed: int) -> None:
    assert yunet.detect(background(1280, 720, np.random.default_rng(seed))) == []
    assert yunet.detect(cv2.cvtColor(landscape_image(), cv2.COLOR_BGR2GRAY)) == []


def test_tiny_and_flat_images_do_not_crash(yunet: YuNetDetector) -> None:
    assert yunet.detect(np.zeros((1, 1), np.uint8)) == []
    assert yunet.detect(np.full((20, 700), 128, np.uint8)) == []


def test_haar_backend_still_available_without_landmarks(hopper: np.ndarray) -> None:
    detector = FaceDetector(backend="haar")
    assert detector.name == HaarDetector.name
    faces = detector.detect(hopper)
    assert len(faces) == 1 and faces[0].landmarks is None


def test_photo_path_reports_landmarks_and_detector(hopper: np.ndarray) -> None:
    shipped = face_model.load(ARTIFACT_DIR)
    image = DecodedImage(rotate(hopper, 20.0), "PNG")
    (result,) = analyze_batch([image], model=shipped, detector=FaceDetector())
    body = result.to_dict()
    assert body["detector"] == "yunet"
    (face,) = body["faces"]
    assert list(face["landmarks"]) == list(LANDMARK_NAMES)
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    (never,) = analyze_batch([image], model=shipped, detector=FaceDetector(), mode=DetectMode.NEVER)
    assert never.to_dict()["detector"] is None
    assert never.to_dict()["faces"][0]["landmarks"] is None
