"""The fusion forest in scikit-learn vs onnxruntime, in process, one thread (seconds to run).

    python bench/fusion_runtime.py [--seconds 2]

Prints milliseconds per ``FusionModel.predict`` call (features and calibration included) for
batches of 1 and 32 random inputs over every modality subset, and how far the two runtimes'
probabilities are apart on 7,000 such inputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.fusion.app import load  # noqa: E402
from services.fusion.model import SUBSETS, FusionModel  # noqa: E402
from services.fusion.settings import Settings  # noqa: E402


def inputs(n: int, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    return [{m: rng.dirichlet(np.full(7, 0.3)) for m in SUBSETS[i % len(SUBSETS)]} for i in range(n)]


def ms_per_call(model: FusionModel, batch: list[dict[str, np.ndarray]], seconds: float) -> float:
    model.predict(batch)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.predict(batch)
        calls += 1
    return 1000 * (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)
    models = {rt: load(Settings(inference_runtime=rt, inference_threads=1)) for rt in ("sklearn", "onnx")}
    if models["onnx"].runtime_proba is None:
        print("the forest did not load on onnxruntime (see the log)")
        return 1
    for n in (1, 32):
        batch = inputs(n, rng)
        for runtime, model in models.items():
            print(f"batch {n:>2} {runtime:>7}: {ms_per_call(model, batch, args.seconds):.3f} ms per call")
    batch = inputs(7000, rng)
    a, b = models["sklearn"].predict(batch), models["onnx"].predict(batch)
    agree = float((a.argmax(axis=1) == b.argmax(axis=1)).mean())
    print(f"7000 inputs: max |onnx - sklearn| {np.abs(a - b).max():.2g}, top labels agree {agree:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
