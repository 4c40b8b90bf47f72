"""Calibrating the fused output: per-subset temperatures and the correlation guard, stress-tested.

The forest and the product rule learn from triples whose modalities are independent given the
label. Real signals of one person are not: a face and a voice that agree are partly the same
evidence counted twice. :func:`correlated_triples` builds triples whose modalities agree more than
chance, so the guard ``c`` (see ``services/fusion/model.py``) can be measured where it matters.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from services.fusion.model import SUBSET_NAMES, SUBSETS, FusionModel, stack_features
from training.calibration import calibration_metrics, fit_temperature
from training.fusion.data import Fold, ModalityItems, build_triples, subset_mask, triple_probabilities

#: Correlation-guard values tried by the stress test.
CORRELATION_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
#: The guard is the largest c whose out-of-fold ECE on independent triples stays within this, every subset.
INDEPENDENT_ECE_BUDGET = 0.04


def fit_subset_temperatures(oof: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Per multimodal subset name, the temperature minimising NLL of its out-of-fold blended output.

    ``oof`` maps a subset name to (labels, blended probabilities); single-modality subsets pass
    through unchanged and keep 1.0.
    """
    temperatures = dict.fromkeys(SUBSET_NAMES, 1.0)
    for subset, name in zip(SUBSETS, SUBSET_NAMES, strict=True):
        if len(subset) > 1 and name in oof:
            y, blended = oof[name]
            temperatures[name] = round(1.0 / fit_temperature(y, blended).scale[0], 4)
    return temperatures


def correlated_triples(
    parts: Mapping[str, ModalityItems],
    n: int,
    rng: np.random.Generator,
    labels: Sequence[int],
    agreement: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Label-aligned triples in which, with probability ``agreement``, every modality's item has the
    same predicted label as the first modality's item (right together or wrong together).

    ``agreement = 0`` gives :func:`build_triples`' independent triples; where no item of a modality
    has the label and that prediction, its independent draw is kept.
    """
    y, index = build_triples(parts, n, rng, labels)
    modalities = list(parts)
    lead = modalities[0]
    lead_pred = parts[lead].probs[index[lead]].argmax(axis=1)
    tie = rng.random(n) < agreement
    for modality in modalities[1:]:
        items = parts[modality]
        predicted = items.probs.argmax(axis=1)
        for i in np.flatnonzero(tie):
            pool = np.flatnonzero((items.labels == y[i]) & (predicted == lead_pred[i]))
            if len(pool):
                index[modality][i] = rng.choice(pool)
    return y, index


def blended_subsets(
    model: FusionModel, probabilities: Mapping[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per multimodal subset name (of the modalities given), its feature matrix and blended, uncalibrated output."""
    scaled = model.scale_inputs(probabilities)
    n = len(next(iter(probabilities.values())))
    result = {}
    for subset, name in zip(SUBSETS, SUBSET_NAMES, strict=True):
        if len(subset) > 1 and set(subset) <= set(probabilities):
            x = stack_features(scaled, subset_mask(subset, n))
            result[name] = (x, model.blend_forest(x, model.forest_probabilities(x)))
    return result


def subset_outputs(
    model: FusionModel, probabilities: Mapping[str, np.ndarray], correlation: float
) -> dict[str, np.ndarray]:
    """Per multimodal subset name, the model's calibrated output with guard ``correlation``."""
    return {name: model.calibrate(x, b, correlation) for name, (x, b) in blended_subsets(model, probabilities).items()}


def stress_test(
    model: FusionModel,
    parts: Mapping[str, ModalityItems],
    *,
    labels: Sequence[int],
    n: int,
    seed: int,
    agreements: Sequence[float] = (0.0, 0.5, 1.0),
    grid: Sequence[float] = CORRELATION_GRID,
) -> dict[str, Any]:
    """ECE / accuracy / mean confidence per multimodal subset, for each agreement level and guard value."""
    table: dict[str, Any] = {}
    for agreement in agreements:
        y, index = correlated_triples(parts, n, np.random.default_rng(seed), labels, agreement)
        blended = blended_subsets(model, triple_probabilities(parts, index))  # the forest once; c only rescales
        rows: dict[str, Any] = {}
        for c in grid:
            rows[f"{c:.1f}"] = {}
            for name, (x, b) in blended.items():
                out = model.calibrate(x, b, c)
                rows[f"{c:.1f}"][name] = {
                    **calibration_metrics(y, out),
                    "accuracy": float((out.argmax(axis=1) == y).mean()),
                    "mean_confidence": float(out.max(axis=1).mean()),
                }
        table[f"agreement={agreement:.1f}"] = rows
    return table


def mean_tables(tables: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The element-wise mean of several :func:`stress_test` tables of the same shape (e.g. one per fold)."""
    first = tables[0]
    return {
        a: {
            c: {
                name: {key: float(np.mean([t[a][c][name][key] for t in tables])) for key in first[a][c][name]}
                for name in first[a][c]
            }
            for c in first[a]
        }
        for a in first
    }


def fit_output_calibration(
    oof: Sequence[Fold], product_weights: Mapping[str, float], *, seed: int
) -> tuple[dict[str, float], float, dict[str, Any]]:
    """Per-subset output temperatures and the correlation guard, fitted on out-of-fold folds only.

    The temperatures minimise NLL of each fold model's blended output on its held-out triples; the
    guard is then the strongest ``c`` whose fold-averaged ECE on independent triples stays within
    :data:`INDEPENDENT_ECE_BUDGET` (see :func:`choose_correlation`). Returns (temperatures, c, table).
    """
    collected: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for fold in oof:
        fold.model.product_weights = dict(product_weights)
        for name, (_, b) in blended_subsets(fold.model, fold.probabilities).items():
            collected.setdefault(name, []).append((fold.y, b))
    stacked = {
        name: (np.concatenate([y for y, _ in pairs]), np.concatenate([b for _, b in pairs]))
        for name, pairs in collected.items()
    }
    temperatures = fit_subset_temperatures(stacked)
    tables = []
    for k, fold in enumerate(oof):
        fold.model.output_temperatures = temperatures
        tables.append(stress_test(fold.model, fold.held, labels=fold.labels, n=len(fold.y), seed=seed + 300 + k))
    table = mean_tables(tables)
    correlation = choose_correlation(table)
    before = {name: calibration_metrics(y, b)["ece"] for name, (y, b) in stacked.items()}
    return temperatures, correlation, {"oof_ece_uncalibrated": before, "oof_stress_test": table}


def choose_correlation(table: Mapping[str, Any], budget: float = INDEPENDENT_ECE_BUDGET) -> float:
    """The strongest guard whose ECE on independent triples stays within ``budget`` on every subset."""
    independent = table["agreement=0.0"]
    ok = [float(c) for c, subsets in independent.items() if all(m["ece"] <= budget for m in subsets.values())]
    return max(ok) if ok else 0.0


def disagreement_report(
    model: FusionModel, probabilities: Mapping[str, np.ndarray], y: np.ndarray
) -> dict[str, dict[str, float]]:
    """All three modalities present: accuracy and mean fused confidence by how many modality labels agree."""
    fused = subset_outputs(model, probabilities, model.correlation)["+".join(probabilities)]
    predicted = np.stack([p.argmax(axis=1) for p in probabilities.values()], axis=1)
    distinct = np.array([len(set(row)) for row in predicted.tolist()])
    names = {1: "all agree", 2: "two agree", 3: "all differ"}
    report = {}
    for k, name in names.items():
        rows = distinct == k
        if rows.any():
            report[name] = {
                "n": int(rows.sum()),
                "accuracy": float((fused[rows].argmax(axis=1) == y[rows]).mean()),
                "mean_confidence": float(fused[rows].max(axis=1).mean()),
                **{k2: v for k2, v in calibration_metrics(y[rows], fused[rows]).items() if k2 == "ece"},
            }
    return report
