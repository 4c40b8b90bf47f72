"""Classification metrics and their printed / JSON report, shared by every evaluator."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from shared.labels import LABELS
from training.calibration import calibration_metrics


def classification_report(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class P/R/F1/support and the confusion matrix over all 7 labels."""
    labels = list(range(len(LABELS)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = [i for i in labels if support[i] > 0]
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # Averages over the classes present in the reference labels, as is usual per dataset.
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)),
        "labels": list(LABELS),
        "per_class": {
            LABELS[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in labels
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


#: Predicted index of an item the model gave no answer for (e.g. no face found).
NO_PREDICTION = -1


def report_from_probabilities(y_true: Sequence[int], probabilities: np.ndarray) -> dict[str, Any]:
    """:func:`classification_report` of the arg-max of an (n, 7) probability matrix.

    A row of NaN means the model gave no answer for that item: it counts as wrong (and as a
    miss in its true class's recall), never as a guessed label, and ``no_prediction`` counts them.
    """
    matrix = np.asarray(probabilities, dtype=np.float64)
    unanswered = np.isnan(matrix).any(axis=1)
    predicted = np.where(unanswered, NO_PREDICTION, np.nan_to_num(matrix, nan=0.0).argmax(axis=1))
    report = classification_report(list(y_true), predicted.tolist())
    report["no_prediction"] = int(unanswered.sum())
    # Calibration is measured on the answered rows: an unanswered row has no confidence to judge.
    report.update(calibration_metrics(np.asarray(y_true)[~unanswered], matrix[~unanswered]))
    return report


def format_report(report: dict[str, Any], title: str = "") -> str:
    """A human-readable rendering of :func:`classification_report`'s output."""
    lines = [title] if title else []
    lines.append(
        f"n={report['n']}  accuracy={report['accuracy']:.4f}  "
        f"macro_f1={report['macro_f1']:.4f}  weighted_f1={report['weighted_f1']:.4f}"
    )
    if "ece" in report:
        lines.append(f"ece={report['ece']:.4f}  nll={report['nll']:.4f}  brier={report['brier']:.4f}")
    if report.get("no_prediction"):
        lines.append(f"no prediction (counted as wrong): {report['no_prediction']}")
    lines.append("")
    lines.append(f"{'label':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for label, row in report["per_class"].items():
        lines.append(
            f"{label:<10}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10d}"
        )
    lines.append("")
    lines.append("confusion matrix (rows = true, columns = predicted)")
    lines.append(" " * 10 + "".join(f"{label[:8]:>9}" for label in report["labels"]))
    for label, row in zip(report["labels"], report["confusion"], strict=True):
        lines.append(f"{label:<10}" + "".join(f"{v:>9d}" for v in row))
    return "\n".join(lines)


def save_confusion_png(report: dict[str, Any], path: str, title: str) -> None:
    """Write the confusion matrix (row-normalised) as a PNG for a model card."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(report["confusion"], dtype=float)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(
                j,
                i,
                f"{int(matrix[i, j])}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if normalised[i, j] > 0.5 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\nacc={report['accuracy']:.3f} macro-F1={report['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
