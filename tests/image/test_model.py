"""The shipped weights load and behave like a probability model."""

from pathlib import Path

import numpy as np
import pytest

from services.image import model as face_model
from services.image.settings import ARTIFACT_DIR
from shared.labels import LABELS

MAX_ARTIFACT_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def shipped() -> face_model.FaceEmotionModel:
    return face_model.load(ARTIFACT_DIR)


def test_shipped_model_loads_and_is_small(shipped: face_model.FaceEmotionModel) -> None:
    weights = ARTIFACT_DIR / face_model.WEIGHTS_FILE
    assert weights.stat().st_size <= MAX_ARTIFACT_BYTES
    assert shipped.name == "face-emotion-resnet"
    assert shipped.version
    assert shipped.meta["labels"] == list(LABELS)


def test_predict_returns_distributions_for_any_crop_size(shipped: face_model.FaceEmotionModel) -> None:
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, size=shape, dtype=np.uint8) for shape in [(48, 48), (20, 31), (300, 240)]]
    probs = shipped.predict(crops)
    assert probs.shape == (3, len(LABELS))
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert shipped.predict([]).shape == (0, len(LABELS))


def test_flip_tta_makes_prediction_mirror_invariant(shipped: face_model.FaceEmotionModel) -> None:
    crop = np.random.default_rng(1).integers(0, 256, size=(48, 48), dtype=np.uint8)
    probs = shipped.predict([crop, crop[:, ::-1].copy()])
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-5)


def test_non_greyscale_crop_is_rejected(shipped: face_model.FaceEmotionModel) -> None:
    with pytest.raises(ValueError, match="greyscale"):
        shipped.predict([np.zeros((48, 48, 3), dtype=np.uint8)])


def test_missing_and_corrupt_weights_raise_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(face_model.ModelLoadError, match="not found"):
        face_model.load(tmp_path)
    (tmp_path / face_model.WEIGHTS_FILE).write_bytes(b"not a torch file")
    with pytest.raises(face_model.ModelLoadError, match="could not load"):
        face_model.load(tmp_path)
