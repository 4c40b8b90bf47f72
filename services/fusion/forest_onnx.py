"""The fusion forest served by onnxruntime: one tree-ensemble kernel instead of scikit-learn's per-tree loop.

scikit-learn's ``predict_proba`` walks the forest tree by tree in Python (about 5 ms per call for the
shipped 150 trees, whatever the batch); onnxruntime's ``TreeEnsembleClassifier`` answers the same
call in microseconds. The forest is converted with skl2onnx in double precision (the thresholds and
leaf values of the scikit-learn trees, unrounded), cached on disk like the text and image exports,
and checked against scikit-learn on probe rows at load: a conversion that does not reproduce the
forest is refused and the service keeps scikit-learn (logged), never serving other numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shared.onnx_runtime import artifact_key, cached_onnx, default_cache_dir, session

logger = logging.getLogger(__name__)

#: Bump when the conversion recipe changes, so old cached files are not reused.
EXPORT_VERSION = "1"
#: Largest difference from scikit-learn's probabilities accepted on the probe rows (summation order leaves ~3e-8).
TOLERANCE = 1e-6

ForestProba = Callable[[np.ndarray], np.ndarray]


def convert(forest: Any, n_features: int) -> bytes:
    """The forest as an ONNX graph on float64 input: outputs ``label`` and ``probabilities`` (no ZipMap)."""
    from skl2onnx import to_onnx

    probe = np.zeros((1, n_features), dtype=np.float64)
    graph = to_onnx(forest, probe, options={id(forest): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    data: bytes = graph.SerializeToString()
    return data


def onnx_forest(
    forest: Any, artifact: Path, *, probe: np.ndarray, threads: int = 1, cache_dir: Path | None = None
) -> ForestProba:
    """A ``predict_proba`` for ``forest`` running in onnxruntime, checked on ``probe`` rows against scikit-learn.

    Raises ValueError when the converted graph does not reproduce the forest within :data:`TOLERANCE`.
    """
    import skl2onnx

    key = artifact_key([artifact], EXPORT_VERSION, skl2onnx.__version__)
    path = (cache_dir or default_cache_dir()) / f"fusion-forest-{key}.onnx"
    runner = session(cached_onnx(path, lambda: convert(forest, probe.shape[1])), threads=threads)
    input_name = runner.get_inputs()[0].name

    def predict_proba(x: np.ndarray) -> np.ndarray:
        probabilities = runner.run(["probabilities"], {input_name: np.ascontiguousarray(x, dtype=np.float64)})[0]
        return np.asarray(probabilities, dtype=np.float64)

    expected = np.asarray(forest.predict_proba(probe), dtype=np.float64)
    got = predict_proba(probe)
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=0.0, atol=TOLERANCE):
        worst = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
        raise ValueError(f"the ONNX forest differs from scikit-learn on the probe rows (max {worst:.3g})")
    return predict_proba
