"""Triple building, the item split, and training/scoring on synthetic probabilities."""

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from services.fusion.model import SUBSET_NAMES, SUBSETS, FusionModel, load
from shared.labels import MODALITIES
from tests.fusion.conftest import synthetic_parts
from training.calibration import ece_from_bins
from training.fusion import train as train_module
from training.fusion.data import (
    ModalityItems,
    build_triples,
    jitter,
    product_baseline,
    random_subset_masks,
    split_items,
    synthetic_items,
)


def test_seven_subsets() -> None:
    assert SUBSET_NAMES == (
        "speech",
        "text",
        "image",
        "speech+text",
        "speech+image",
        "text+image",
        "speech+text+image",
    )


def test_speech_split_by_actor_in_order() -> None:
    speech = synthetic_parts()["speech"]
    fit, test = split_items(speech, seed=0, test_fraction=0.25, ordered_groups=True)
    assert set(fit.groups) == {f"ravdess_{a:02d}" for a in range(9, 18)}
    assert set(test.groups) == {"ravdess_18", "ravdess_19", "ravdess_20"}
    assert len(fit) + len(test) == len(speech)
    # The fusion split holds out exactly the actors the speech model never saw, however many are cached.
    fit_parts, test_parts = train_module.split_parts(
        synthetic_parts(), seed=0, test_fraction=0.4, speech_test_groups=train_module.SPEECH_TEST_ACTORS
    )
    assert set(test_parts["speech"].groups) == {f"ravdess_{a}" for a in range(17, 21)}
    assert set(fit_parts["speech"].groups) == {f"ravdess_{a:02d}" for a in range(9, 17)}


def test_group_split_shares_no_group_or_item() -> None:
    rng = np.random.default_rng(0)
    items = synthetic_items("text", 300, 2.0, rng, n_groups=50)  # duplicates share a group
    fit, test = split_items(items, seed=3, test_fraction=0.4)
    assert not set(fit.groups) & set(test.groups)
    assert not set(fit.ids) & set(test.ids)
    assert 0.5 < len(fit) / len(items) < 0.7


def test_triples_are_label_aligned_and_balanced() -> None:
    parts = synthetic_parts()
    y, index = build_triples(parts, 700, np.random.default_rng(0))
    assert np.bincount(y, minlength=7).tolist() == [100] * 7
    for m in MODALITIES:
        assert np.array_equal(parts[m].labels[index[m]], y)


def test_triples_need_a_shared_label() -> None:
    parts = synthetic_parts()
    only_happy = parts["text"].take(parts["text"].labels == 3)
    only_sad = parts["image"].take(parts["image"].labels == 4)
    with pytest.raises(ValueError, match="share no label"):
        build_triples({"text": only_happy, "image": only_sad}, 10, np.random.default_rng(0))


def test_random_masks_cover_every_subset_equally() -> None:
    mask = random_subset_masks(700, np.random.default_rng(0))
    patterns = {tuple(row) for row in mask.tolist()}
    assert len(patterns) == 7 and (False, False, False) not in patterns
    counts = {p: int((mask == np.array(p)).all(axis=1).sum()) for p in patterns}
    assert set(counts.values()) == {100}


def test_jitter_keeps_distributions() -> None:
    p = synthetic_parts()["text"].probs[:50]
    q = jitter(p, np.random.default_rng(0), 1.0)
    assert np.allclose(q.sum(axis=1), 1.0) and not np.allclose(p, q)
    assert jitter(p, np.random.default_rng(0), 0.0) is p


def test_product_baseline_combines_evidence() -> None:
    a = np.array([[0.6, 0.4, 0, 0, 0, 0, 0]])
    b = np.array([[0.4, 0.6, 0, 0, 0, 0, 0]])
    c = np.array([[0.3, 0.7, 0, 0, 0, 0, 0]])
    fused = product_baseline({"speech": a, "text": b, "image": c}, ("speech", "text", "image"))
    assert fused.argmax() == 1 and np.isclose(fused.sum(), 1.0)


def test_trained_forest_reports_every_subset_and_fuses_usefully(trained: tuple[FusionModel, dict]) -> None:
    model, metrics = trained
    subsets = metrics["subsets"]
    assert list(subsets) == list(SUBSET_NAMES)
    for name, entry in subsets.items():
        assert entry["fusion"]["n"] == 700
        assert set(entry["single"]) == set(name.split("+"))
        assert {"mean", "product", "temperature_scaled_variant"} <= set(entry)
    # Independent evidence from three modalities beats the best one alone, even for a tiny forest.
    assert (
        subsets["speech+text+image"]["fusion"]["accuracy"] > subsets["speech+text+image"]["single"]["image"]["accuracy"]
    )
    # The product-rule weights were fitted out of fold, one per subset, and are what the model uses.
    assert metrics["product_weights"] == model.product_weights and set(model.product_weights) == set(SUBSET_NAMES)
    assert all(model.product_weights[m] in (0.0, 1.0) for m in MODALITIES)
    for name, entry in subsets.items():
        assert entry["product_weight"] == model.product_weights[name]
        if entry["product_weight"] == 0.0:
            assert entry["fusion"] == entry["forest_only"]
    table = metrics["product_weights_out_of_fold"]
    assert table["grid"] == list(train_module.PRODUCT_WEIGHT_GRID) and table["folds"] == train_module.BLEND_FOLDS
    assert all(len(acc) == 11 for acc in table["oof_accuracy"].values())
    split = metrics["construction"]["split"]["speech"]
    assert split["fit_actors"] == [f"ravdess_{a:02d}" for a in range(9, 17)]
    assert split["test_actors"] == [f"ravdess_{a}" for a in range(17, 21)]
    assert model.forest.n_features_in_ == 31


def _write_parts(directory: Path) -> None:
    for m, items in synthetic_parts(1).items():
        items.save(directory / f"{m}.npz")


def test_train_cli_writes_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    probs, out = tmp_path / "probs", tmp_path / "out"
    _write_parts(probs)
    monkeypatch.setattr(train_module, "DEFAULT_FOREST", {**train_module.DEFAULT_FOREST, "n_estimators": 5})
    code = train_module.main(["--probs", str(probs), "--out", str(out), "--n-fit", "700", "--n-test", "350"])
    assert code == 0
    assert {p.name for p in out.iterdir()} == {
        "fusion_forest.joblib",
        "metrics.json",
        "confusion.png",
        "reliability.png",
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["construction"]["seed"] == 0 and metrics["artifact_mb"] < 10
    assert load(out).predict([{"text": [0, 0, 0, 1, 0, 0, 0]}]).shape == (1, 7)
    assert "| speech+text+image | 350 |" in capsys.readouterr().out


def test_train_cli_says_which_cache_is_missing(tmp_path: Path) -> None:
    ModalityItems.save(synthetic_parts()["text"], tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError, match="speech, image"):
        train_module.main(["--probs", str(tmp_path), "--out", str(tmp_path / "out")])


def test_subsets_constant_matches_names() -> None:
    assert tuple("+".join(s) for s in SUBSETS) == SUBSET_NAMES


def test_selection_uses_only_fusion_train_and_tries_both_variants() -> None:
    fit_parts, _ = train_module.split_parts(
        synthetic_parts(), seed=0, test_fraction=0.4, speech_test_groups=train_module.SPEECH_TEST_ACTORS
    )
    candidates = (({"n_estimators": 3, "max_leaf_nodes": 16}, 0.5), ({"n_estimators": 3, "max_leaf_nodes": 32}, 1.0))
    params, sigma, _, table = train_module.select_candidate(fit_parts, seed=0, n_fit=700, candidates=candidates)
    assert len(table) == 4 and {row["temperature"] for row in table} == {False, True}
    best = max(table, key=lambda row: row["mean_subset_accuracy"])
    assert (params, sigma) == (best["forest"], best["jitter_sigma"])
    # The inner split never reaches actors 17-20 (fusion-test).
    assert set(fit_parts["speech"].groups) == {f"ravdess_{a:02d}" for a in range(9, 17)}


def test_speech_fusion_test_is_actors_17_20_whatever_actors_are_cached() -> None:
    parts = synthetic_parts()
    speech = parts["speech"]
    actors = np.array([f"ravdess_{1 + i % 20:02d}" for i in range(len(speech))])
    parts["speech"] = ModalityItems("speech", speech.probs, speech.labels, speech.ids, actors)
    fit_parts, test_parts = train_module.split_parts(
        parts, seed=0, test_fraction=0.4, speech_test_groups=train_module.SPEECH_TEST_ACTORS
    )
    assert sorted(set(fit_parts["speech"].groups)) == [f"ravdess_{a:02d}" for a in range(1, 17)]
    assert sorted(set(test_parts["speech"].groups)) == [f"ravdess_{a}" for a in range(17, 21)]
    # Inner selection split: actors 01-12 fit, 13-16 validate; 17-20 never appear.
    inner_fit, inner_val = train_module.split_parts(
        fit_parts, seed=1, test_fraction=0.3, speech_test_groups=train_module.SPEECH_INNER_VAL_ACTORS
    )
    assert sorted(set(inner_fit["speech"].groups)) == [f"ravdess_{a:02d}" for a in range(1, 13)]
    assert sorted(set(inner_val["speech"].groups)) == [f"ravdess_{a}" for a in range(13, 17)]


def test_one_standard_error_rule_prefers_the_product_rule_within_noise() -> None:
    grid = np.asarray(train_module.PRODUCT_WEIGHT_GRID)
    accuracy = np.linspace(0.80, 0.70, 11)  # the forest (w = 0) is best ...
    # ... by far with many triples: keep it; with few, 0.80 and 0.79 are indistinguishable: w = 0.1.
    assert train_module.one_standard_error_choice(grid, accuracy, 1_000_000) == 0.0
    assert train_module.one_standard_error_choice(grid, accuracy, 1000) == 0.1
    assert train_module.one_standard_error_choice(grid, accuracy[::-1], 1000) == 1.0


def test_group_folds_keep_groups_whole() -> None:
    items = synthetic_items("text", 300, 2.0, np.random.default_rng(0), n_groups=30)
    folds = train_module.group_folds(items, 3, rng=np.random.default_rng(0), ordered=False)
    assert set(folds.tolist()) == {0, 1, 2}
    for group in np.unique(items.groups):
        assert len(set(folds[items.groups == group].tolist())) == 1
    speech = synthetic_parts()["speech"]  # actors 09-20 in order: 09-14 fold 0, 15-20 fold 1
    ordered = train_module.group_folds(speech, 2, rng=np.random.default_rng(0), ordered=True)
    assert set(speech.groups[ordered == 0]) == {f"ravdess_{a:02d}" for a in range(9, 15)}


def test_product_weights_pick_the_product_rule_when_the_forest_cannot_learn() -> None:
    """A forest fed pure noise loses to the modalities' own evidence out of fold, so w goes to 1."""
    fit_parts, _ = train_module.split_parts(synthetic_parts(), seed=0, test_fraction=0.4)
    crippled = functools.partial(
        train_module.fit_model,
        n_fit=700,
        forest_params={"n_estimators": 3, "max_leaf_nodes": 4, "max_features": 1},
        jitter_sigma=3.0,
    )
    oof = train_module.out_of_fold(fit_parts, crippled, labels=list(range(7)), seed=0, n_val=700)
    weights, table = train_module.fit_product_weights(oof)
    assert set(weights) == set(SUBSET_NAMES)
    assert weights["speech+text+image"] >= 0.5
    oof = table["oof_accuracy"]["speech+text+image"]
    assert oof[-1] > oof[0]  # the product rule beats this crippled forest out of fold


TINY_FOREST = {"n_estimators": 4, "max_leaf_nodes": 32, "min_samples_leaf": 5, "max_features": 2}


def test_prepare_data_reads_every_cache_and_reports_single_accuracies(tmp_path: Path, capsys) -> None:
    _write_parts(tmp_path)
    parts = train_module.prepare_data(tmp_path)
    assert set(parts) == set(MODALITIES)
    assert all(len(parts[m]) == len(synthetic_parts(1)[m].usable()) for m in MODALITIES)
    printed = capsys.readouterr().out
    assert all(f"{m}: " in printed and "single-model accuracy" in printed for m in MODALITIES)


def test_fit_variants_differ_only_by_temperature() -> None:
    fit_parts, _ = train_module.split_parts(synthetic_parts(), seed=0, test_fraction=0.4)
    temperatures = {"speech": 2.0, "text": 0.5, "image": 1.0}
    variants, tables = train_module.fit_variants(
        fit_parts,
        labels=list(range(7)),
        seed=0,
        n_fit=700,
        temperatures=temperatures,
        forest_params=TINY_FOREST,
        jitter_sigma=1.0,
        blend_folds=2,
    )
    assert set(variants) == set(tables) == {"raw", "temperature"}
    assert variants["temperature"].temperatures == temperatures
    assert set(variants["raw"].temperatures.values()) == {1.0}
    for variant, model in variants.items():
        assert set(model.product_weights) == set(SUBSET_NAMES)
        assert model.forest.n_estimators == 4
        # output calibration fitted out of fold: singles untouched, multimodal temperatures and a guard chosen
        assert all(model.output_temperatures[name] == 1.0 for name in ("speech", "text", "image"))
        assert 0.0 <= model.correlation <= 1.0
        assert set(tables[variant]["calibration"]["oof_stress_test"]) == {
            "agreement=0.0",
            "agreement=0.5",
            "agreement=1.0",
        }


def test_evaluate_scores_every_subset_and_states_the_targets(trained: tuple[FusionModel, dict]) -> None:
    model, _ = trained
    _, test_parts = train_module.split_parts(synthetic_parts(), seed=0, test_fraction=0.4)
    y, index = build_triples(test_parts, 140, np.random.default_rng(5))
    probs = {m: test_parts[m].probs[index[m]] for m in MODALITIES}
    results, report, targets = train_module.evaluate(model, model, probs, y, other_key="same_again")
    assert list(results) == list(SUBSET_NAMES)
    for entry in results.values():
        assert entry["same_again"]["fusion"] == entry["fusion"]  # the "other" variant is scored alongside
    assert report["n"] == 140
    assert set(targets) == {
        "all_three_beats_best_single_by_3_points",
        "every_subset_at_least_best_single",
        "every_subset_ece_at_most_0.05",
        "fusion_beats_mean_and_product",
        "forest_alone_beats_mean_and_product",
    }
    assert set(targets["fusion_beats_mean_and_product"]) == set(SUBSET_NAMES)


def test_export_writes_the_forest_metrics_and_figure(trained: tuple[FusionModel, dict], tmp_path: Path) -> None:
    model, metrics = trained
    path, size_mb = train_module.export(model, dict(metrics), tmp_path)
    assert path == tmp_path / "fusion_forest.joblib"
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["artifact_mb"] == round(size_mb, 3) and size_mb > 0
    assert (tmp_path / "confusion.png").stat().st_size > 1000
    assert (tmp_path / "reliability.png").stat().st_size > 1000
    after = written["subsets"]["speech+text+image"]["reliability"]["after"]
    assert sum(b["count"] for b in after) == written["subsets"]["speech+text+image"]["fusion"]["n"]
    assert ece_from_bins(after) == pytest.approx(written["subsets"]["speech+text+image"]["fusion"]["ece"])
    assert load(tmp_path).product_weights == model.product_weights


def test_speech_without_out_of_fold_or_unseen_actors_is_refused() -> None:
    speech = synthetic_parts()["speech"]
    assert train_module.checked_speech(speech) is speech
    actors = np.array([int(g.split("_")[1]) for g in speech.groups])
    for missing in (actors < 17, actors >= 17):  # no fusion-train actors, then no fusion-test actors
        with pytest.raises(ValueError, match="out of fold"):
            train_module.checked_speech(speech.take(~missing))
