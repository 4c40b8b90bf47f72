"""The face model applies the calibrator shipped beside its weights; a broken calibrator refuses the load."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from services.image.model import WEIGHTS_FILE, ModelLoadError, load
from services.image.settings import ARTIFACT_DIR
from shared.calibration import CALIBRATION_FILE, Calibrator, load_calibrator


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(6)]


def test_calibration_file_is_applied_and_can_be_switched_off(tmp_path: Path, crops: list[np.ndarray]) -> None:
    shutil.copy(ARTIFACT_DIR / WEIGHTS_FILE, tmp_path / WEIGHTS_FILE)
    raw = load(tmp_path).predict(crops)  # no calibration file: identity
    Calibrator.temperature(0.5).save(tmp_path / CALIBRATION_FILE)
    sharpened = load(tmp_path).predict(crops)
    assert np.allclose(sharpened, Calibrator.temperature(0.5)(raw))
    assert (sharpened.max(axis=1) > raw.max(axis=1)).all()
    assert np.allclose(load(tmp_path, calibrated=False).predict(crops), raw)
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"kind": "temperature", "scale": [0] * 7, "bias": [0] * 7}))
    with pytest.raises(ModelLoadError, match="calibrat"):
        load(tmp_path)


def test_shipped_face_model_has_a_fitted_calibrator(crops: list[np.ndarray]) -> None:
    calibrator = load_calibrator(ARTIFACT_DIR, required=True)
    assert not calibrator.is_identity
    assert "public_test" in calibrator.fitted_on
    probabilities = load(ARTIFACT_DIR).predict(crops)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
