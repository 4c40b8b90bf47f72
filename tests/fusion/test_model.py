"""The pure fusion model: feature layout, prediction, artefact loading."""

from pathlib import Path

import joblib
import numpy as np
import pytest

from services.fusion.model import (
    FEATURE_NAMES,
    NUM_FEATURES,
    FusionModel,
    ModelFileError,
    apply_temperature,
    features,
    load,
)

ONE_HOT_HAPPY = [0, 0, 0, 1, 0, 0, 0]
UNIFORM = [1 / 7] * 7


def test_feature_layout_zeros_absent_modalities_and_sets_flags() -> None:
    x = features([{"text": ONE_HOT_HAPPY}, {"speech": UNIFORM, "image": ONE_HOT_HAPPY}])
    assert x.shape == (2, NUM_FEATURES) == (2, 31)
    assert FEATURE_NAMES[7 + 3] == "text.happy"
    assert FEATURE_NAMES[21:24] == ("speech.present", "text.present", "image.present")
    assert FEATURE_NAMES[24 + 3] == "product.happy"
    assert x[0, 7:14].tolist() == ONE_HOT_HAPPY
    assert x[0, :7].sum() == 0 and x[0, 14:21].sum() == 0
    assert x[0, 21:24].tolist() == [0, 1, 0]
    assert x[1, 21:24].tolist() == [1, 0, 1]
    assert np.allclose(x[1, :7], 1 / 7)
    # Product-rule posterior of the present modalities: one modality -> its own vector.
    assert np.allclose(x[0, 24:], ONE_HOT_HAPPY, atol=1e-4)
    assert np.allclose(x[1, 24:], ONE_HOT_HAPPY, atol=1e-4)


def test_product_features_multiply_only_present_modalities() -> None:
    speech = [0.4, 0.1, 0.1, 0.2, 0.1, 0.05, 0.05]
    text = [0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1]
    x = features([{"speech": speech, "text": text}, {"speech": speech}])
    expected = np.multiply(speech, text) / np.dot(speech, text)
    assert np.allclose(x[0, 24:], expected)
    assert int(x[0, 24:].argmax()) == 3  # happy: 0.08 beats angry's 0.04
    assert np.allclose(x[1, 24:], speech)


@pytest.mark.parametrize(
    "item",
    [{}, {"video": UNIFORM}, {"text": [0.5, 0.5]}, {"text": [0.9, 0.9, 0, 0, 0, 0, 0]}, {"text": [float("nan")] * 7}],
)
def test_features_reject_bad_inputs(item: dict) -> None:
    with pytest.raises(ValueError):
        features([item])


def test_temperature_one_is_identity_and_high_temperature_flattens() -> None:
    p = np.array([[0.7, 0.1, 0.05, 0.05, 0.04, 0.03, 0.03]])
    assert np.array_equal(apply_temperature(p, 1.0), p)
    flat = apply_temperature(p, 5.0)
    assert np.isclose(flat.sum(), 1.0) and flat.max() < p.max() and flat.argmax() == 0


def test_predict_returns_probabilities_for_each_input(model_dir: Path) -> None:
    model = load(model_dir)
    out = model.predict([{"text": ONE_HOT_HAPPY}, {"speech": UNIFORM, "text": ONE_HOT_HAPPY, "image": ONE_HOT_HAPPY}])
    assert out.shape == (2, 7)
    assert np.allclose(out.sum(axis=1), 1.0)
    assert out.argmax(axis=1).tolist() == [3, 3]


def test_save_load_round_trip(trained: tuple[FusionModel, dict], tmp_path: Path) -> None:
    model = trained[0]
    path = model.save(tmp_path / "m.joblib")
    again = load(path)
    assert (again.name, again.version) == (model.name, model.version)
    batch = [{"image": ONE_HOT_HAPPY}, {"speech": UNIFORM, "text": UNIFORM}]
    assert np.array_equal(again.predict(batch), model.predict(batch))


def test_load_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path)
    joblib.dump({"format": 99}, tmp_path / "fusion_forest.joblib")
    with pytest.raises(ModelFileError, match="format"):
        load(tmp_path)
    (tmp_path / "fusion_forest.joblib").write_text("garbage")
    with pytest.raises(ModelFileError):
        load(tmp_path)
