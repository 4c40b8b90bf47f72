"""The pure fusion model: feature layout, prediction, artefact loading."""

from pathlib import Path

import joblib
import numpy as np
import pytest

from services.fusion.model import (
    FEATURE_NAMES,
    NUM_FEATURES,
    SUBSET_NAMES,
    FusionModel,
    ModelFileError,
    apply_temperature,
    features,
    load,
    subset_codes,
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
    assert again.product_weights == model.product_weights and set(again.product_weights) == set(SUBSET_NAMES)
    batch = [{"image": ONE_HOT_HAPPY}, {"speech": UNIFORM, "text": UNIFORM}]
    assert np.array_equal(again.predict(batch), model.predict(batch))


def test_subset_codes_follow_presence_flags() -> None:
    x = features(
        [{"speech": UNIFORM}, {"text": UNIFORM, "image": UNIFORM}, dict.fromkeys(("speech", "text", "image"), UNIFORM)]
    )
    assert [SUBSET_NAMES[c] for c in subset_codes(x)] == ["speech", "text+image", "speech+text+image"]
    assert subset_codes(np.zeros((1, NUM_FEATURES))).tolist() == [-1]


def test_product_weight_blends_forest_and_product_rule_per_subset(trained: tuple[FusionModel, dict]) -> None:
    forest = trained[0].forest
    speech = [0.4, 0.1, 0.1, 0.2, 0.1, 0.05, 0.05]
    text = [0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1]
    image = [0.1, 0.1, 0.1, 0.1, 0.4, 0.1, 0.1]
    batch = [{"speech": speech, "text": text}, {"text": text, "image": image}, {"speech": speech, "image": image}]
    x = features(batch)
    weights = dict.fromkeys(SUBSET_NAMES, 0.0) | {"speech+image": 1.0, "speech+text": 0.25}
    model = FusionModel(forest=forest, name="t", version="1", product_weights=weights)
    out = model.predict(batch)
    by_forest = model.forest_probabilities(x)
    assert np.allclose(out[0], 0.75 * by_forest[0] + 0.25 * x[0, 24:])
    assert np.allclose(out[1], by_forest[1])  # w = 0: the forest alone
    assert np.allclose(out[2], x[2, 24:])  # w = 1: the product rule alone
    assert np.allclose(out.sum(axis=1), 1.0)
    assert not np.allclose(by_forest[2], x[2, 24:])  # so the last check tested the blend, not the forest


@pytest.mark.parametrize("product_weight", [0.0, 1.0])
def test_a_single_modality_passes_through_exactly(trained: tuple[FusionModel, dict], product_weight: float) -> None:
    rng = np.random.default_rng(0)
    weights = dict.fromkeys(SUBSET_NAMES, product_weight)
    temps = dict.fromkeys(SUBSET_NAMES, 0.5)
    model = FusionModel(
        forest=trained[0].forest,
        name="t",
        version="1",
        product_weights=weights,
        output_temperatures=temps,
        temperatures={"speech": 2.0, "text": 0.7, "image": 1.3},
        correlation=0.8,
    )
    for modality in ("speech", "text", "image"):
        vectors = rng.dirichlet(np.full(7, 0.5), size=50)
        vectors[0] = [1, 0, 0, 0, 0, 0, 0]  # zeros must stay zeros
        out = model.predict([{modality: v} for v in vectors])
        assert np.abs(out - vectors).max() <= 1e-12


def test_output_temperature_and_correlation_guard_soften_multimodal_rows(trained: tuple[FusionModel, dict]) -> None:
    forest = trained[0].forest
    batch = [
        {"speech": [0.6, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05], "text": [0.5, 0.2, 0.1, 0.05, 0.05, 0.05, 0.05]},
        {
            "speech": [0.6, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05],
            "text": [0.5, 0.2, 0.1, 0.05, 0.05, 0.05, 0.05],
            "image": [0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05],
        },
    ]
    plain = FusionModel(forest=forest, name="t", version="1")
    tempered = FusionModel(forest=forest, name="t", version="1", output_temperatures={"speech+text": 2.0})
    base, warm = plain.predict(batch), tempered.predict(batch)
    assert warm[0].max() < base[0].max() and warm[0].argmax() == base[0].argmax()
    assert np.allclose(warm[1], base[1])  # another subset's temperature is untouched
    guarded = plain.predict(batch, correlation=1.0)
    # c = 1 divides the logits by 1 + (k - 1): by 2 for two modalities, by 3 for three.
    expected = np.exp(np.log(base[1]) / 3)
    assert np.allclose(guarded[1], expected / expected.sum())
    assert guarded[1].max() < guarded[0].max() or base[1].max() < base[0].max()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plain.predict(batch, correlation=1.5)


def test_save_and_load_keep_output_calibration(trained: tuple[FusionModel, dict], tmp_path: Path) -> None:
    model = trained[0]
    model.output_temperatures = dict.fromkeys(SUBSET_NAMES, 1.0) | {"text+image": 1.7}
    model.correlation = 0.3
    loaded = load(model.save(tmp_path / "fusion_forest.joblib"))
    assert loaded.output_temperatures["text+image"] == 1.7 and loaded.correlation == 0.3
    bad = FusionModel(forest=model.forest, name="t", version="1", output_temperatures={"speech+text": 0.0})
    with pytest.raises(ValueError, match="output temperatures"):
        bad.save(tmp_path / "bad.joblib")
    with pytest.raises(ValueError, match="correlation"):
        FusionModel(forest=model.forest, name="t", version="1", correlation=2.0).save(tmp_path / "bad.joblib")


def test_save_refuses_out_of_range_product_weights(trained: tuple[FusionModel, dict], tmp_path: Path) -> None:
    bad = FusionModel(forest=trained[0].forest, name="t", version="1", product_weights={"speech": 1.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bad.save(tmp_path / "m.joblib")
    unknown = FusionModel(forest=trained[0].forest, name="t", version="1", product_weights={"video": 0.5})
    with pytest.raises(ValueError, match="unknown subsets"):
        unknown.save(tmp_path / "m.joblib")


def test_load_refuses_bad_product_weights(trained: tuple[FusionModel, dict], tmp_path: Path) -> None:
    path = trained[0].save(tmp_path / "fusion_forest.joblib")
    payload = joblib.load(path)
    payload["product_weights"] = {"speech": -0.5}
    joblib.dump(payload, path)
    with pytest.raises(ModelFileError, match="product weights"):
        load(tmp_path)
    del payload["product_weights"]
    joblib.dump(payload, path)
    with pytest.raises(ModelFileError, match="product weights"):
        load(tmp_path)


def test_load_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path)
    joblib.dump({"format": 99}, tmp_path / "fusion_forest.joblib")
    with pytest.raises(ModelFileError, match="format"):
        load(tmp_path)
    joblib.dump({"format": 2}, tmp_path / "fusion_forest.joblib")  # the previous, forest-only layout
    with pytest.raises(ModelFileError, match="format 4"):
        load(tmp_path)
    (tmp_path / "fusion_forest.joblib").write_text("garbage")
    with pytest.raises(ModelFileError):
        load(tmp_path)


def test_shipped_model_matches_its_metrics_and_passes_single_modalities_through() -> None:
    """The committed artefact: its blend weights are the ones its card/metrics report, and any one
    modality alone comes back exactly as given (the services' probabilities are already calibrated)."""
    import json

    from services.fusion.settings import DEFAULT_MODEL_DIR

    model = load(DEFAULT_MODEL_DIR)
    metrics = json.loads((DEFAULT_MODEL_DIR / "metrics.json").read_text())
    assert model.product_weights == metrics["product_weights"]
    rng = np.random.default_rng(0)
    for modality in ("speech", "text", "image"):
        vectors = rng.dirichlet(np.full(7, 0.5), size=200)
        fused = model.predict([{modality: row} for row in vectors])
        assert np.abs(fused - vectors).max() <= 1e-6
