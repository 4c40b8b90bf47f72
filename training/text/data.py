"""The text training data: every ``<dataset>/{train,val}.csv`` under the data root, as one 7-class set."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.labels import LABEL_TO_INDEX, LABELS, NUM_LABELS
from training.report import classification_report, format_report, save_confusion_png


@dataclass(frozen=True)
class Example:
    """One labelled text and the dataset it came from."""

    text: str
    label: int
    dataset: str


def dataset_names(root: str | Path, split: str) -> list[str]:
    """Folders under ``root`` that hold ``<split>.csv``, sorted."""
    return sorted(p.parent.name for p in Path(root).glob(f"*/{split}.csv"))


def load_split(root: str | Path, split: str, *, limit_per_dataset: int | None = None) -> list[Example]:
    """All rows of ``<root>/*/<split>.csv`` with a non-empty text and a known emotion."""
    examples: list[Example] = []
    names = dataset_names(root, split)
    if not names:
        raise FileNotFoundError(f"no */{split}.csv under {root}")
    for name in names:
        with (Path(root) / name / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
            rows = [
                Example(row["text"].strip(), LABEL_TO_INDEX[row["emotion"].strip().lower()], name)
                for row in csv.DictReader(handle)
                if (row.get("text") or "").strip() and (row.get("emotion") or "").strip().lower() in LABEL_TO_INDEX
            ]
        examples.extend(rows[:limit_per_dataset] if limit_per_dataset else rows)
    return examples


def class_weights(labels: Sequence[int], power: float = 0.5) -> np.ndarray:
    """Inverse-frequency weights raised to ``power`` (0.5 = square root), normalised to mean 1 over seen classes."""
    counts = np.bincount(np.asarray(labels), minlength=NUM_LABELS).astype(np.float64)
    weights = np.zeros(NUM_LABELS)
    seen = counts > 0
    weights[seen] = (counts[seen].sum() / (seen.sum() * counts[seen])) ** power
    weights[seen] /= weights[seen].mean()
    return weights


def per_dataset_reports(examples: Sequence[Example], probabilities: np.ndarray) -> dict[str, dict[str, Any]]:
    """Classification report (over the 7-way prediction) per dataset and for all rows together."""
    predicted = np.asarray(probabilities).argmax(axis=1)
    reports: dict[str, dict[str, Any]] = {}
    for name in sorted({e.dataset for e in examples}):
        idx = [i for i, e in enumerate(examples) if e.dataset == name]
        reports[name] = classification_report([examples[i].label for i in idx], predicted[idx].tolist())
    reports["overall"] = classification_report([e.label for e in examples], predicted.tolist())
    return reports


def print_reports(reports: dict[str, dict[str, Any]], title: str) -> None:
    """Every dataset's full report, then a one-line summary table."""
    for name, report in reports.items():
        print(format_report(report, title=f"\n=== {title}: {name} (val) ==="))
    print(f"\n{'dataset':<18}{'n':>7}{'accuracy':>10}{'macro_f1':>10}{'weighted_f1':>13}")
    for name, r in reports.items():
        print(f"{name:<18}{r['n']:>7}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}{r['weighted_f1']:>13.4f}")


def report_shipped_model(
    folder: str | Path, val: Sequence[Example], *, metrics: str | None, figure: str | None
) -> dict[str, dict[str, Any]]:
    """Load the exported files exactly as the service does, then print (and optionally save) val reports."""
    from services.text.model import load

    shipped = load(folder)
    reports = per_dataset_reports(val, shipped.predict([e.text for e in val]))
    print_reports(reports, title=f"{shipped.name} {shipped.version}")
    if metrics:
        Path(metrics).write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
    if figure:
        save_confusion_png(reports["overall"], figure, title=f"{shipped.name}: all val splits")
    return reports


__all__ = [
    "LABELS",
    "Example",
    "class_weights",
    "dataset_names",
    "load_split",
    "per_dataset_reports",
    "print_reports",
    "report_shipped_model",
]
