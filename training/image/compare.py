"""Face weight files side by side on a FER2013 split, alone and averaged (flip TTA unless --no-tta, uncalibrated).

    python -m training.image.compare services/image/artifacts/face_emotion.pt /tmp/fer_w48/exported.pt

Each file runs through the service's classifier (``services.image.model.load``, PyTorch, flip TTA,
calibration off so that files with and without a calibrator compare alike); "mean" averages their
probabilities, i.e. what shipping them as an ensemble would give.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from services.image import model as face_model
from training.image.data import DEFAULT_ROOT, load_split
from training.report import report_from_probabilities


def probabilities(path: Path, images: np.ndarray, batch: int = 256, *, tta: bool = True) -> np.ndarray:
    """Uncalibrated (n, 7) probabilities (flip TTA if ``tta``) of the weights in ``path`` for (n, 48, 48) crops."""
    loaded = face_model.load(path, tta=tta, calibrated=False)
    return np.concatenate([loaded.predict(list(images[i : i + batch])) for i in range(0, len(images), batch)])


def crops_per_second(path: Path, images: np.ndarray, *, tta: bool, batch: int = 32, repeats: int = 5) -> float:
    """Batched classifier throughput as served (onnxruntime, one thread): median crops/s over ``repeats`` passes."""
    with tempfile.TemporaryDirectory() as cache:
        loaded = face_model.load(path, tta=tta, runtime="onnx", threads=1, cache_dir=Path(cache))
        crops = list(images)
        loaded.predict(crops[:batch])  # first call: session set-up
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(crops), batch):
                loaded.predict(crops[i : i + batch])
            rates.append(len(crops) / (time.perf_counter() - start))
    return statistics.median(rates)


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 and disgust recall of the arg-max (``training.report``'s definitions)."""
    report = report_from_probabilities(y.tolist(), p)
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "disgust_recall": report["per_class"]["disgust"]["recall"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="+", help="face_emotion.pt files (exported format)")
    parser.add_argument("--split", default="public_test")
    parser.add_argument("--data", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True, help="flip TTA (default on)")
    parser.add_argument(
        "--speed", action="store_true", help="also time each file batched (32 crops) on one thread, as served"
    )
    args = parser.parse_args(argv)
    split = load_split(args.split, root=args.data)
    if args.speed:
        for path in args.weights:
            rate = crops_per_second(path, split.images[:256], tta=args.tta)
            print(f"{path}: {rate:.0f} crops/s batched on one thread (onnxruntime)")
    rows = {str(path): probabilities(path, split.images, tta=args.tta) for path in args.weights}
    if len(rows) > 1:
        rows["mean"] = np.mean(list(rows.values()), axis=0)
    for name, p in rows.items():
        s = scores(split.labels, p)
        print(f"{name}: accuracy {s['accuracy']:.4f}  macro_f1 {s['macro_f1']:.4f}", end="")
        print(f"  disgust recall {s['disgust_recall']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
