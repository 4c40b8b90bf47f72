"""``python -m training.calibrate MODALITY MANIFEST.csv [...] --out MODEL_DIR``: fit a model's calibrator.

Runs the modality's evaluator (the service's code path) with calibration switched off
(``APPLY_CALIBRATION=false``), fits temperature or vector scaling on the manifests' labels (whichever
has the lower cross-validated NLL), writes ``calibration.json`` into the model folder, a reliability
diagram, and prints ECE / NLL / Brier before and after (after = out of fold, 5 folds).
The manifests must be validation data the model did not train on.
"""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from shared.calibration import CALIBRATION_FILE
from training.calibration import fit_calibrator, save_reliability_png
from training.manifest import read_manifest

INPUT_COLUMNS = {"text": "text", "speech": "path", "image": "path"}


def raw_probabilities(modality: str, manifests: list[str], options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and uncalibrated (n, 7) probabilities of every answered row of the manifests."""
    import importlib

    os.environ["APPLY_CALIBRATION"] = "false"
    module = importlib.import_module(f"training.{modality}.evaluate")
    labels, rows = [], []
    for path in manifests:
        manifest = read_manifest(path, INPUT_COLUMNS[modality])
        rows.append(np.asarray(module.predict_manifest(manifest, **options), dtype=np.float64))
        labels.extend(manifest.labels)
    y, p = np.asarray(labels, dtype=np.int64), np.concatenate(rows)
    answered = np.isfinite(p).all(axis=1)  # e.g. an image with no face found has no probabilities
    return y[answered], p[answered]


def calibrate(modality: str, manifests: list[str], out: Path, figure: Path | None, options: dict[str, Any]) -> dict:
    """Fit, write ``calibration.json`` (and the figure), and return the before/after report."""
    y, p = raw_probabilities(modality, manifests, options)
    fitted_on = f"{len(y)} validation items: " + ", ".join(manifests)
    calibrator, info = fit_calibrator(y, p, fitted_on=fitted_on)
    calibrator.save(out / CALIBRATION_FILE)
    after = info.pop("after_out_of_fold_probabilities")
    if figure:
        save_reliability_png(
            y, {"before": p, "after (out of fold)": after}, str(figure), f"{modality}: reliability on validation"
        )
    return {"modality": modality, "n": len(y), "calibrator": calibrator.to_json(), **info}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modality", choices=sorted(INPUT_COLUMNS))
    parser.add_argument("manifests", nargs="+", help="validation manifests (text,emotion or path,emotion)")
    parser.add_argument("--out", type=Path, required=True, help="the model folder that gets calibration.json")
    parser.add_argument("--figure", type=Path, help="reliability diagram PNG to write")
    parser.add_argument("--json", type=Path, help="write the report as JSON")
    parser.add_argument("--detect", choices=["auto", "always", "never"], help="face detection mode (image)")
    args = parser.parse_args(argv)
    options = {"detect": args.detect} if args.detect else {}
    report = calibrate(args.modality, args.manifests, args.out, args.figure, options)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
