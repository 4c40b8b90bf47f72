"""Scoring fused and single-modality predictions on triples, for every modality subset."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from services.fusion.model import SUBSETS, FusionModel, stack_features
from training.calibration import calibration_metrics, reliability_bins
from training.fusion.data import mean_baseline, product_baseline, subset_mask
from training.report import classification_report


def summary(y: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, n and calibration (ECE, NLL, Brier) of ``probabilities`` (via training.report)."""
    report = classification_report(y.tolist(), np.asarray(probabilities).argmax(axis=1).tolist())
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "n": report["n"],
        **calibration_metrics(y, probabilities),
    }


def fuse_subset(model: FusionModel, probabilities: Mapping[str, np.ndarray], subset: tuple[str, ...]) -> np.ndarray:
    """The forest's (n, 7) output with only ``subset`` present (``probabilities`` already temperature-scaled)."""
    n = len(next(iter(probabilities.values())))
    return model.predict_features(stack_features(probabilities, subset_mask(subset, n)))


def score_subsets(
    model: FusionModel, probabilities: Mapping[str, np.ndarray], y: np.ndarray, *, baselines: bool = True
) -> dict[str, dict[str, Any]]:
    """Per subset name: the forest, each single modality (arg-max), and the mean/product baselines.

    ``probabilities`` are the raw per-modality (n, 7) matrices of the same n triples; the model's
    own temperatures are applied for the forest (and for the baselines when it has any).
    """
    scaled = model.scale_inputs(probabilities)
    results: dict[str, dict[str, Any]] = {}
    for subset in SUBSETS:
        name = "+".join(subset)
        singles = {m: summary(y, probabilities[m]) for m in subset}
        best = max(singles, key=lambda m: singles[m]["accuracy"])
        x = stack_features(scaled, subset_mask(subset, len(y)))
        forest = model.forest_probabilities(x)
        blended = model.blend_forest(x, forest)
        fused = model.calibrate(x, blended)
        entry: dict[str, Any] = {
            "modalities": list(subset),
            # What the service returns: the blend, calibrated per subset (one modality: its own vector).
            "fusion": summary(y, fused),
            # Reliability bins of the blend before the per-subset temperature and guard, and after.
            "reliability": {"before": reliability_bins(y, blended), "after": reliability_bins(y, fused)},
            "forest_only": summary(y, forest),
            "product_weight": model.product_weights.get(name, 0.0),
            "single": singles,
            "best_single": best,
        }
        if baselines:
            entry["mean"] = summary(y, mean_baseline(scaled, subset))
            entry["product"] = summary(y, product_baseline(scaled, subset))
        entry["fusion_minus_best_single"] = entry["fusion"]["accuracy"] - singles[best]["accuracy"]
        results[name] = entry
    return results


def format_table(results: Mapping[str, Mapping[str, Any]], title: str = "") -> str:
    """A Markdown table: one row per subset, accuracy / macro-F1 of fusion, baselines and singles."""
    lines = [title, ""] if title else []
    lines.append(
        "| subset | n | fusion acc / F1 | fusion ECE | w | forest alone acc / F1 | mean acc / F1 | product acc / F1 "
        "| best single (acc / F1) | fusion - best single |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")

    def pair(m: Mapping[str, Any] | None) -> str:
        return "-" if m is None else f"{m['accuracy']:.4f} / {m['macro_f1']:.4f}"

    for name, entry in results.items():
        best = entry["best_single"]
        lines.append(
            f"| {name} | {entry['fusion']['n']} | {pair(entry['fusion'])} | {entry['fusion']['ece']:.4f} | "
            f"{entry['product_weight']:.1f} | "
            f"{pair(entry['forest_only'])} | {pair(entry.get('mean'))} | "
            f"{pair(entry.get('product'))} | {best}: {pair(entry['single'][best])} | "
            f"{entry['fusion_minus_best_single'] * 100:+.2f} pts |"
        )
    return "\n".join(lines)


def format_singles(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table of each modality model alone on the same test triples (arg-max)."""
    full = results["+".join(max((e["modalities"] for e in results.values()), key=len))]
    lines = ["| single modality model (arg-max) | accuracy | macro-F1 |", "|---|---|---|"]
    for modality, m in full["single"].items():
        lines.append(f"| {modality} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |")
    return "\n".join(lines)
