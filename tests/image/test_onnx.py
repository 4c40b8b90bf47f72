"""The onnxruntime serving path gives the PyTorch model's answers (same top label, same probabilities)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from services.image import model as face_model
from services.image.settings import ARTIFACT_DIR
from tests.image.synth import draw_face


def fixture_crops() -> list[np.ndarray]:
    """Greyscale crops of drawn faces (smiling or not, several sizes) and of textured noise."""
    crops = []
    for size, smile in [(48, True), (48, False), (96, True), (96, False), (150, True), (64, False)]:
        canvas = np.full((size, size, 3), 190, np.uint8)
        draw_face(canvas, size // 2, size // 2, int(size * 0.95), smile=smile)
        crops.append(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY))
    rng = np.random.default_rng(7)
    crops += [cv2.GaussianBlur(rng.integers(0, 256, (48, 48), dtype=np.uint8), (0, 0), 2.0) for _ in range(10)]
    return crops


@pytest.fixture(scope="module")
def torch_model() -> face_model.FaceEmotionModel:
    return face_model.load(ARTIFACT_DIR, runtime="torch")


@pytest.mark.parametrize("tta", [True, False])
def test_onnx_matches_pytorch_on_the_fixture_set(
    torch_model: face_model.FaceEmotionModel, tmp_path_factory: pytest.TempPathFactory, tta: bool
) -> None:
    cache = tmp_path_factory.mktemp("onnx-cache")
    onnx = face_model.load(ARTIFACT_DIR, runtime="onnx", threads=1, cache_dir=cache, tta=tta)
    assert onnx.session is not None and onnx.runtime == "onnx"
    assert len(list(cache.glob("image-onnx-*.onnx"))) == 1  # exported once, then reused
    torch_model.tta = tta
    crops = fixture_crops()
    expected, got = torch_model.predict(crops), onnx.predict(crops)
    assert got.shape == expected.shape == (len(crops), 7)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # Batch composition does not change an item's answer (a micro-batch may mix any requests).
    np.testing.assert_allclose(onnx.predict(crops[:1])[0], got[0], atol=1e-5)


def test_a_cached_export_is_reused(tmp_path: Path) -> None:
    face_model.load(ARTIFACT_DIR, runtime="onnx", cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.onnx")
    stamp = cached.stat().st_mtime_ns
    again = face_model.load(ARTIFACT_DIR, runtime="onnx", cache_dir=tmp_path)
    assert cached.stat().st_mtime_ns == stamp
    assert again.predict(fixture_crops()[:2]).shape == (2, 7)


def test_an_unknown_runtime_is_a_load_error() -> None:
    with pytest.raises(face_model.ModelLoadError, match="unknown runtime"):
        face_model.load(ARTIFACT_DIR, runtime="tensorrt")
