"""The speech model applies the calibrator shipped beside it to every segment; a bad one refuses the load."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from services.speech.model import CONFIG_FILE, MODEL_FILE, SpeechModel, load
from services.speech.settings import ARTIFACTS_DIR
from shared.calibration import CALIBRATION_FILE, load_calibrator

from .conftest import voice


def test_shipped_calibrator_is_applied_to_every_segment() -> None:
    raw = load(ARTIFACTS_DIR, calibrated=False)
    calibrator = load_calibrator(ARTIFACTS_DIR, required=True)
    assert not calibrator.is_identity
    # Fitted on held-out speakers: out-of-fold predictions of RAVDESS actors 01-16 (17-20 checks it).
    assert "out-of-fold clips of RAVDESS actors 01-16" in calibrator.fitted_on
    calibrated = SpeechModel(raw.network, raw.config, raw.encoder, calibrator)
    segments = [voice(1.5, seed=1), voice(3.0, f0=220.0, seed=2)]
    expected = calibrator(raw.predict(segments))
    assert np.allclose(calibrated.predict(segments), expected)
    assert np.allclose(expected.sum(axis=1), 1.0)


def test_malformed_calibration_file_is_refused_before_the_slow_loads(tmp_path: Path) -> None:
    shutil.copy(ARTIFACTS_DIR / CONFIG_FILE, tmp_path / CONFIG_FILE)
    (tmp_path / MODEL_FILE).write_bytes(b"not loaded: the calibrator is checked first")
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"kind": "vector", "scale": [1.0], "bias": [0.0]}))
    with pytest.raises(ValueError, match="calibration"):
        load(tmp_path)
