"""Calibration metrics, fitting and the shipped calibrator format."""

import json

import numpy as np
import pytest

from shared.calibration import CALIBRATION_FILE, CalibrationError, Calibrator, load_calibrator
from training.calibration import (
    NEAR_TIE_ECE,
    calibration_metrics,
    class_balanced_weights,
    expected_calibration_error,
    fit_calibrator,
    fit_temperature,
    fit_vector,
    reliability_bins,
    save_reliability_png,
)
from training.report import report_from_probabilities


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def calibrated_sample(n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from the probabilities themselves: calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = softmax(rng.normal(0, 2.0, size=(n, 7)))
    y = np.array([rng.choice(7, p=row) for row in p])
    return y, p


def test_calibrated_probabilities_have_small_ece_and_sharpened_ones_large():
    y, p = calibrated_sample()
    good = calibration_metrics(y, p)
    overconfident = calibration_metrics(y, Calibrator.temperature(0.4)(p))
    assert good["ece"] < 0.03
    assert overconfident["ece"] > 0.1
    assert overconfident["nll"] > good["nll"]
    assert overconfident["brier"] > good["brier"]


def test_metrics_on_hand_computed_case():
    y = np.array([0, 1])
    p = np.array([[0.9, 0.1, 0, 0, 0, 0, 0], [0.8, 0.2, 0, 0, 0, 0, 0]], dtype=float)
    m = calibration_metrics(y, p)
    # Bin of 0.9: acc 1, conf 0.9; bin of 0.8: acc 0, conf 0.8 -> ECE = (0.1 + 0.8) / 2.
    assert m["ece"] == pytest.approx(0.45)
    assert m["nll"] == pytest.approx(-(np.log(0.9) + np.log(0.2)) / 2)
    assert m["brier"] == pytest.approx(((0.1**2 + 0.1**2) + (0.8**2 + 0.8**2)) / 2)
    assert sum(r["count"] for r in reliability_bins(y, p)) == 2


def test_temperature_fit_undoes_a_known_sharpening():
    y, p = calibrated_sample()
    sharpened = Calibrator.temperature(0.5)(p)  # softmax(2 log p)
    fitted = fit_temperature(y, sharpened)
    assert 1.0 / fitted.scale[0] == pytest.approx(2.0, rel=0.1)
    assert calibration_metrics(y, fitted(sharpened))["ece"] < 0.03


def test_vector_scaling_fixes_a_class_bias_temperature_cannot():
    y, p = calibrated_sample(seed=1)
    biased = Calibrator(kind="vector", scale=(1.0,) * 7, bias=(1.5, 0, 0, 0, 0, 0, -1.0))(p)
    temperature_nll = calibration_metrics(y, fit_temperature(y, biased)(biased))["nll"]
    vector = fit_vector(y, biased)
    assert calibration_metrics(y, vector(biased))["nll"] < temperature_nll - 0.01
    chosen, info = fit_calibrator(y, biased)
    assert info["chosen"] == "vector" and chosen.kind == "vector"


def test_class_balanced_ece_equals_the_ece_of_a_balanced_copy():
    rng = np.random.default_rng(3)
    p = softmax(rng.normal(0, 2.0, size=(30, 7)))
    y = np.array([0] * 20 + [1] * 5 + [2] * 5)  # class 0 four times as frequent
    weights = class_balanced_weights(y)
    assert [weights[y == k].sum() for k in range(3)] == pytest.approx([1.0, 1.0, 1.0])
    copies = np.r_[np.arange(20), np.repeat(np.arange(20, 30), 4)]  # every class 20 rows
    balanced = expected_calibration_error(y, p, weights)
    assert balanced == pytest.approx(expected_calibration_error(y[copies], p[copies]))
    assert balanced != pytest.approx(expected_calibration_error(y, p))
    assert expected_calibration_error(y, p) == pytest.approx(calibration_metrics(y, p)["ece"])


def test_calibrator_choice_is_by_worst_case_ece_then_nll():
    y, p = calibrated_sample(seed=4)
    rare = np.flatnonzero(y == 6)[: int(np.sum(y == 6)) // 5]
    keep = np.r_[np.flatnonzero(y != 6), rare]  # class 6 rare: the as-is and balanced mixes differ
    y, p = y[keep], Calibrator(kind="vector", scale=(1.3,) * 7, bias=(0.8, 0, 0, 0, 0, 0, 0))(p[keep])
    _, info = fit_calibrator(y, p)
    worst = {name: max(e.values()) for name, e in info["cv_ece"].items()}
    assert set(worst) == {"temperature", "vector"}
    assert worst[info["chosen"]] <= min(worst.values()) + NEAR_TIE_ECE
    tied = [name for name in worst if worst[name] <= min(worst.values()) + NEAR_TIE_ECE]
    assert info["cv_nll"][info["chosen"]] == min(info["cv_nll"][name] for name in tied)


def test_identity_is_exact_and_calibrators_round_trip(tmp_path):
    p = softmax(np.random.default_rng(2).normal(size=(5, 7)))
    assert np.array_equal(Calibrator()(p), p)
    assert np.array_equal(Calibrator.temperature(1.0)(p), p)
    assert load_calibrator(tmp_path) == Calibrator()  # no file: identity
    fitted = Calibrator(kind="vector", scale=(1.1, 0.9, 1, 1, 1, 1, 1.2), bias=(0.1, 0, 0, 0, 0, 0, -0.1))
    fitted.save(tmp_path / CALIBRATION_FILE)
    loaded = load_calibrator(tmp_path, required=True)
    assert loaded == fitted
    out = loaded(p)
    assert np.allclose(out.sum(axis=1), 1.0) and (out > 0).all()


@pytest.mark.parametrize(
    "payload",
    [
        {"kind": "vector", "scale": [1] * 6, "bias": [0] * 7},
        {"kind": "vector", "scale": [1, 1, 1, 1, 1, 1, -1], "bias": [0] * 7},
        {"kind": "temperature", "scale": [1, 2, 1, 1, 1, 1, 1], "bias": [0] * 7},
        {"kind": "platt", "scale": [1] * 7, "bias": [0] * 7},
        {"kind": "vector", "scale": [1] * 7},
    ],
)
def test_malformed_calibration_files_are_refused(tmp_path, payload):
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(payload))
    with pytest.raises(CalibrationError):
        load_calibrator(tmp_path)
    with pytest.raises(CalibrationError):
        load_calibrator(tmp_path / "missing.json", required=True)


def test_report_has_calibration_keys_and_skips_unanswered_rows(tmp_path):
    y, p = calibrated_sample(n=300)
    with_gap = p.copy()
    with_gap[0] = np.nan
    report = report_from_probabilities(y.tolist(), with_gap)
    expected = calibration_metrics(y[1:], p[1:])
    assert {k: report[k] for k in ("ece", "nll", "brier")} == pytest.approx(expected)
    save_reliability_png(y, {"before": p, "after": p}, str(tmp_path / "r.png"), "test")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
