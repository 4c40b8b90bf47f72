"""The text model applies the calibrator shipped beside it; a broken calibrator refuses the load."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from services.text.model import ArtifactError, load
from services.text.settings import ARTIFACTS_DIR
from shared.calibration import CALIBRATION_FILE, Calibrator, load_calibrator

TEXTS = ["I am so happy today!", "This is disgusting.", "I'm scared of the dark", "ok"]


@pytest.fixture(scope="module")
def bilstm_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("bilstm") / "bilstm"
    shutil.copytree(ARTIFACTS_DIR / "bilstm", target)
    (target / CALIBRATION_FILE).unlink(missing_ok=True)
    return target


def test_calibration_file_is_applied_and_can_be_switched_off(bilstm_copy: Path) -> None:
    raw = load(bilstm_copy).predict(TEXTS)  # no file: identity
    Calibrator.temperature(2.5).save(bilstm_copy / CALIBRATION_FILE)
    calibrated = load(bilstm_copy).predict(TEXTS)
    assert np.allclose(calibrated, Calibrator.temperature(2.5)(raw))
    assert np.array_equal(calibrated.argmax(axis=1), raw.argmax(axis=1))
    assert (calibrated.max(axis=1) < raw.max(axis=1)).all()
    assert np.allclose(load(bilstm_copy, calibrated=False).predict(TEXTS), raw)
    (bilstm_copy / CALIBRATION_FILE).unlink()


def test_malformed_calibration_refuses_the_model(tmp_path: Path, bilstm_copy: Path) -> None:
    broken = tmp_path / "bilstm"
    shutil.copytree(bilstm_copy, broken)
    (broken / CALIBRATION_FILE).write_text(json.dumps({"kind": "vector", "scale": [1, 2], "bias": []}))
    with pytest.raises(ArtifactError, match="calibrat"):
        load(broken)


def test_shipped_minilm_has_a_fitted_calibrator() -> None:
    calibrator = load_calibrator(ARTIFACTS_DIR / "minilm", required=True)
    assert not calibrator.is_identity
    assert "validation" in calibrator.fitted_on
