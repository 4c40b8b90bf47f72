"""Fused-output calibration: per-subset temperatures, correlated triples and the correlation guard."""

import numpy as np

from services.fusion.model import SUBSET_NAMES, FusionModel
from training.fusion.calibration import (
    choose_correlation,
    correlated_triples,
    disagreement_report,
    fit_subset_temperatures,
    stress_test,
)
from training.fusion.data import triple_probabilities

from .conftest import synthetic_parts


def agreement_rate(parts, index) -> float:
    predicted = np.stack([parts[m].probs[index[m]].argmax(axis=1) for m in parts], axis=1)
    return float((predicted == predicted[:, :1]).all(axis=1).mean())


def test_correlated_triples_agree_more_than_chance_and_keep_labels():
    parts = synthetic_parts()
    labels = list(range(7))
    y0, independent = correlated_triples(parts, 700, np.random.default_rng(0), labels, agreement=0.0)
    y1, tied = correlated_triples(parts, 700, np.random.default_rng(0), labels, agreement=1.0)
    assert np.array_equal(y0, y1)
    for m, items in parts.items():
        assert np.array_equal(items.labels[tied[m]], y1)  # still label-aligned
    assert agreement_rate(parts, tied) > agreement_rate(parts, independent) + 0.2


def test_subset_temperature_softens_an_overconfident_blend():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 2000)
    logits = rng.normal(0, 1, (2000, 7))
    logits[np.arange(2000), y] += 1.0
    sharp = np.exp(4 * logits)
    sharp /= sharp.sum(axis=1, keepdims=True)
    temps = fit_subset_temperatures({"speech+text": (y, sharp), "speech": (y, sharp)})
    assert temps["speech"] == 1.0  # one modality is never rescaled
    assert temps["speech+text"] > 2.0
    assert set(temps) == set(SUBSET_NAMES)


def test_guard_lowers_confidence_on_correlated_triples(trained: tuple[FusionModel, dict]):
    model = trained[0]
    parts = synthetic_parts(seed=1)
    table = stress_test(model, parts, labels=list(range(7)), n=700, seed=0, agreements=(0.0, 1.0), grid=(0.0, 1.0))
    tied = table["agreement=1.0"]
    for name in ("speech+text", "speech+text+image"):
        assert tied["1.0"][name]["mean_confidence"] < tied["0.0"][name]["mean_confidence"]
        assert tied["1.0"][name]["accuracy"] == tied["0.0"][name]["accuracy"]  # tempering keeps the labels
    independent = table["agreement=0.0"]
    assert choose_correlation(table, budget=1.0) == 1.0
    assert choose_correlation(table, budget=-1.0) == 0.0
    worst = max(m["ece"] for m in independent["0.0"].values())
    assert choose_correlation(table, budget=worst) in (0.0, 1.0)


def test_disagreement_report_counts_every_triple(trained: tuple[FusionModel, dict]):
    model = trained[0]
    parts = synthetic_parts(seed=2)
    y, index = correlated_triples(parts, 500, np.random.default_rng(1), list(range(7)), agreement=0.3)
    report = disagreement_report(model, triple_probabilities(parts, index), y)
    assert sum(r["n"] for r in report.values()) == 500
    assert report["all agree"]["mean_confidence"] > report["all differ"]["mean_confidence"]
