"""Calibration metrics (ECE, NLL, Brier), reliability diagrams, and fitting the shipped calibrators.

Every evaluator reports the same keys (``ece``, ``nll``, ``brier``); the calibrator itself is
:class:`shared.calibration.Calibrator`, fitted here on validation data the model did not train on.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from shared.calibration import EPSILON, Calibrator
from shared.labels import NUM_LABELS

#: Equal-width confidence bins for the expected calibration error (the usual 15).
ECE_BINS = 15
#: Calibrator candidates whose worst-case out-of-fold ECE is within this of the lowest are tied (the
#: lower NLL then wins).
NEAR_TIE_ECE = 0.005


def _checked(y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != NUM_LABELS or len(y) != len(p):
        raise ValueError(f"need (n, {NUM_LABELS}) probabilities and n labels, got {p.shape} and {len(y)}")
    return y, p


def class_balanced_weights(y_true: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per item ``1 / count(its class)``: every present class weighs the same in total."""
    y = np.asarray(y_true, dtype=np.int64)
    counts = np.bincount(y, minlength=NUM_LABELS).astype(np.float64)
    return 1.0 / counts[y] if len(y) else np.zeros(0)


def reliability_bins(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    bins: int = ECE_BINS,
    weights: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Per confidence bin: its range, count, weight share, mean confidence and accuracy of the top label.

    ``weights`` (one per item, e.g. :func:`class_balanced_weights`) re-weight the items; default equal.
    """
    y, p = _checked(y_true, probabilities)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Right-closed bins (0, 1/15], ..., as in Guo et al. 2017; a confidence of exactly 0 goes to the first.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        mass = float(w[mask].sum())
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "share": mass / total if total else 0.0,
                "confidence": float(np.average(confidence[mask], weights=w[mask])) if mass else 0.0,
                "accuracy": float(np.average(correct[mask], weights=w[mask])) if mass else 0.0,
            }
        )
    return rows


def expected_calibration_error(
    y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """ECE (15 equal-width bins, top label); ``weights`` re-weight the items (default equal)."""
    return ece_from_bins(reliability_bins(y_true, probabilities, weights=weights))


def ece_from_bins(bins: Sequence[Mapping[str, float]]) -> float:
    """ECE of already computed :func:`reliability_bins`: the share-weighted gap between accuracy and confidence."""
    return float(sum(b["share"] * abs(b["accuracy"] - b["confidence"]) for b in bins))


def calibration_metrics(y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Expected calibration error (15 bins, top label), negative log-likelihood and Brier score."""
    y, p = _checked(y_true, probabilities)
    n = len(y)
    if n == 0:
        return {"ece": float("nan"), "nll": float("nan"), "brier": float("nan")}
    ece = expected_calibration_error(y, p)
    nll = float(-np.log(np.clip(p[np.arange(n), y], EPSILON, 1.0)).mean())
    onehot = np.eye(NUM_LABELS)[y]
    brier = float(((p - onehot) ** 2).sum(axis=1).mean())
    return {"ece": float(ece), "nll": nll, "brier": brier}


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1.0))


def _nll_of_logits(logits: np.ndarray, y: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    return float((log_norm - shifted[np.arange(len(y)), y]).mean())


def fit_temperature(y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray, fitted_on: str = "") -> Calibrator:
    """The temperature that minimises NLL of ``softmax(log(p) / T)`` (searched on log T in [-3, 3])."""
    y, p = _checked(y_true, probabilities)
    logp = _log_probabilities(p)
    result = minimize_scalar(
        lambda log_t: _nll_of_logits(logp / np.exp(log_t), y), bounds=(-3.0, 3.0), method="bounded"
    )
    return Calibrator.temperature(float(np.exp(result.x)), fitted_on=fitted_on)


def fit_vector(
    y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray, fitted_on: str = "", l2: float = 1e-2
) -> Calibrator:
    """Vector scaling: a positive scale and a bias per class, minimising NLL with a small L2 pull to identity."""
    y, p = _checked(y_true, probabilities)
    logp = _log_probabilities(p)
    k = NUM_LABELS

    def objective(theta: np.ndarray) -> float:
        scale, bias = np.exp(theta[:k]), theta[k:]
        return _nll_of_logits(logp * scale + bias, y) + l2 * float((theta**2).sum())

    result = minimize(objective, np.zeros(2 * k), method="L-BFGS-B")
    scale = tuple(float(v) for v in np.exp(result.x[:k]))
    bias = tuple(float(v - result.x[k:].mean()) for v in result.x[k:])  # softmax ignores a shared offset
    return Calibrator(kind="vector", scale=scale, bias=bias, fitted_on=fitted_on)


def fit_calibrator(
    y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray, fitted_on: str = "", folds: int = 5, seed: int = 0
) -> tuple[Calibrator, dict[str, Any]]:
    """Temperature or vector scaling, whichever is better calibrated out of fold whatever the label mix.

    Each candidate's out-of-fold ECE is measured on the items as they are and with every class weighted
    equally (the fusion triples are label-balanced, real traffic is not); the candidate with the lower
    of the two worst cases wins, the cross-validated NLL breaking near-ties (within 0.005). Returns the
    winner refitted on all the data, and a table: each candidate's out-of-fold NLL and ECEs, the winner's
    out-of-fold metrics (the honest "after" figures) and the uncalibrated ones ("before").
    """
    y, p = _checked(y_true, probabilities)
    order = np.random.default_rng(seed).permutation(len(y))
    fold_of = np.empty(len(y), dtype=np.int64)
    fold_of[order] = np.arange(len(y)) % folds
    out_of_fold: dict[str, np.ndarray] = {}
    for name, fit in (("temperature", fit_temperature), ("vector", fit_vector)):
        out_of_fold[name] = np.empty_like(p)
        for f in range(folds):
            held = fold_of == f
            out_of_fold[name][held] = fit(y[~held], p[~held])(p[held])
    balanced = class_balanced_weights(y)
    scores = {name: calibration_metrics(y, oof)["nll"] for name, oof in out_of_fold.items()}
    eces = {
        name: {
            "ece": expected_calibration_error(y, oof),
            "ece_class_balanced": expected_calibration_error(y, oof, balanced),
        }
        for name, oof in out_of_fold.items()
    }
    worst = {name: max(e.values()) for name, e in eces.items()}
    near = [name for name in out_of_fold if worst[name] <= min(worst.values()) + NEAR_TIE_ECE]
    best = min(near, key=lambda name: scores[name])
    chosen = (fit_temperature if best == "temperature" else fit_vector)(y, p, fitted_on=fitted_on)
    info = {
        "cv_nll": scores,
        "cv_ece": eces,
        "chosen": best,
        "folds": folds,
        "before": calibration_metrics(y, p),
        "after_out_of_fold": calibration_metrics(y, out_of_fold[best]),
        "after_out_of_fold_probabilities": out_of_fold[best],
    }
    return chosen, info


def save_reliability_png(
    y_true: Sequence[int] | np.ndarray, curves: dict[str, np.ndarray], path: str, title: str
) -> None:
    """Reliability diagram (accuracy vs confidence per bin) for one or more probability matrices."""
    labelled = {}
    for name, probabilities in curves.items():
        metrics = calibration_metrics(y_true, probabilities)
        labelled[f"{name} (ECE {metrics['ece']:.3f}, NLL {metrics['nll']:.3f})"] = reliability_bins(
            y_true, probabilities
        )
    plot_reliability(labelled, path, title)


def plot_reliability(curves: Mapping[str, Sequence[Mapping[str, float]]], path: str, title: str) -> None:
    """Reliability diagram from already computed bins (:func:`reliability_bins`), one line per entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.0))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, bins in curves.items():
        rows = [r for r in bins if r["count"]]
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker="o", label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top label)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
