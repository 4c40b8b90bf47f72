"""The fusion forest on onnxruntime gives scikit-learn's numbers, is cached, and is refused when it does not."""

import logging
from pathlib import Path

import numpy as np
import pytest

from services.fusion import forest_onnx
from services.fusion.app import load
from services.fusion.model import SUBSETS, FusionModel
from services.fusion.settings import DEFAULT_MODEL_DIR, Settings
from shared.labels import LABELS


def _inputs(n: int, seed: int = 1) -> list[dict[str, np.ndarray]]:
    """Random probability vectors for every modality subset in turn (singles included)."""
    rng = np.random.default_rng(seed)
    return [{m: rng.dirichlet(np.full(len(LABELS), 0.3)) for m in SUBSETS[i % len(SUBSETS)]} for i in range(n)]


def test_the_shipped_forest_on_onnx_gives_the_scikit_learn_probabilities(tmp_path: Path) -> None:
    onnx = load(Settings(model_dir=DEFAULT_MODEL_DIR, inference_runtime="onnx"), cache_dir=tmp_path)
    reference = load(Settings(model_dir=DEFAULT_MODEL_DIR, inference_runtime="sklearn"))
    assert onnx.runtime_proba is not None and reference.runtime_proba is None
    batch = _inputs(700)
    got, expected = onnx.predict(batch), reference.predict(batch)
    assert np.abs(got - expected).max() < 1e-6
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert len(list(tmp_path.glob("fusion-forest-*.onnx"))) == 1


def test_a_second_start_loads_the_cached_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(model_dir=DEFAULT_MODEL_DIR, inference_runtime="onnx")
    load(settings, cache_dir=tmp_path)

    def no_conversion(*_: object) -> bytes:
        raise AssertionError("converted again instead of reading the cache")

    monkeypatch.setattr(forest_onnx, "convert", no_conversion)
    assert load(settings, cache_dir=tmp_path).runtime_proba is not None


def test_a_graph_that_does_not_reproduce_the_forest_is_refused(
    model_dir: Path,
    trained: tuple[FusionModel, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The conversion "succeeds" but yields the shipped forest's graph for the small test forest.
    shipped = load(Settings(model_dir=DEFAULT_MODEL_DIR, inference_runtime="sklearn")).forest
    real_convert = forest_onnx.convert
    monkeypatch.setattr(forest_onnx, "convert", lambda _forest, n: real_convert(shipped, n))
    with caplog.at_level(logging.WARNING):
        model = load(Settings(model_dir=model_dir, inference_runtime="onnx"), cache_dir=tmp_path)
    assert model.runtime_proba is None  # scikit-learn serves
    assert "not served by onnxruntime" in caplog.text and "differs from scikit-learn" in caplog.text
    batch = _inputs(50)
    assert np.array_equal(model.predict(batch), trained[0].predict(batch))


def test_a_failing_conversion_leaves_scikit_learn_serving(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> bytes:
        raise RuntimeError("converter failed")

    monkeypatch.setattr(forest_onnx, "convert", broken)
    with caplog.at_level(logging.WARNING):
        model = load(Settings(model_dir=model_dir, inference_runtime="onnx"), cache_dir=tmp_path)
    assert model.runtime_proba is None and "converter failed" in caplog.text
    assert model.predict(_inputs(5)).shape == (5, len(LABELS))
