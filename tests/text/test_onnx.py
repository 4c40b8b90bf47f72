"""The onnxruntime serving paths give the PyTorch model's answers (fp32: same probabilities; int8: same top label)."""

from pathlib import Path

import numpy as np
import onnx
import pytest

from services.text.model import ArtifactError, MiniLMEmotionModel, TextModel, length_chunks, load
from services.text.settings import ARTIFACTS_DIR

#: Short and long, clear and ambiguous texts, one over the 128-token window.
FIXTURE_TEXTS = [
    "I am so happy today, everything went right!",
    "This is disgusting, I can't even look at it.",
    "I'm terrified of what the results will say.",
    "He shouted at me again and I am furious.",
    "I miss her so much it hurts.",
    "Wait, what? I did not see that coming at all!",
    "The meeting is at 3 pm in room 4.",
    "ok",
    "Honestly I don't know how I feel about the move; part of me is excited, part of me dreads it.",
    "lol that was the best surprise party ever 🎉",
    "We lost the match in the last minute. " * 30,
    "Thanks for the update.",
]


@pytest.fixture(scope="module")
def onnx_model(minilm: TextModel, tmp_path_factory: pytest.TempPathFactory) -> TextModel:
    return load(ARTIFACTS_DIR / "minilm", runtime="onnx", threads=1, cache_dir=tmp_path_factory.mktemp("onnx"))


def test_onnx_matches_pytorch_on_the_fixture_set(minilm: TextModel, onnx_model: TextModel) -> None:
    assert isinstance(onnx_model, MiniLMEmotionModel) and onnx_model.session is not None
    assert onnx_model.network is None  # served without rebuilding the PyTorch network
    expected, got = minilm.predict(FIXTURE_TEXTS), onnx_model.predict(FIXTURE_TEXTS)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert onnx_model.truncated(FIXTURE_TEXTS) == minilm.truncated(FIXTURE_TEXTS)


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-int8")


@pytest.fixture(scope="module")
def int8_model(minilm: TextModel, int8_cache: Path) -> TextModel:
    return load(ARTIFACTS_DIR / "minilm", runtime="onnx-int8", threads=1, cache_dir=int8_cache)


def test_int8_gives_the_pytorch_top_label_on_the_fixture_set(minilm: TextModel, int8_model: TextModel) -> None:
    expected, got = minilm.predict(FIXTURE_TEXTS), int8_model.predict(FIXTURE_TEXTS)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    assert np.abs(got - expected).max() < 0.1  # quantized weights move the probabilities (0.08 at most here)


def test_int8_quantizes_every_layer_but_the_first(int8_model: TextModel, int8_cache: Path) -> None:
    (path,) = int8_cache.glob("text-minilm-onnx-int8-*.onnx")
    nodes = onnx.load(str(path)).graph.node
    first = [n.op_type for n in nodes if "/encoder/layer.0/" in n.name and n.op_type.startswith("MatMul")]
    later = [n.op_type for n in nodes if "/encoder/layer.5/" in n.name and n.op_type.startswith("MatMul")]
    assert first.count("MatMul") == 8 and "MatMulInteger" not in first  # q, k, v, 2 attention, out, ffn x2
    assert later.count("MatMulInteger") == 6  # the six weight matrices; the two attention products stay float


def test_padding_to_the_batch_does_not_change_an_answer(onnx_model: TextModel) -> None:
    alone = onnx_model.predict(FIXTURE_TEXTS[:1])[0]
    with_long_neighbour = onnx_model.predict([FIXTURE_TEXTS[0], FIXTURE_TEXTS[10]])[0]
    np.testing.assert_allclose(alone, with_long_neighbour, atol=1e-5)


def test_an_unknown_runtime_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="unknown runtime"):
        load(ARTIFACTS_DIR / "minilm", runtime="tensorrt")


def test_length_chunks_keep_padding_small_and_cover_every_text() -> None:
    lengths = [5, 40, 6, 7, 39, 12, 5, 41, 13, 128]
    chunks = length_chunks(lengths, max_size=4)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    for chunk in chunks:
        assert len(chunk) <= 4
        padded, real = len(chunk) * max(lengths[i] for i in chunk), sum(lengths[i] for i in chunk)
        assert padded <= 1.25 * real
    assert [lengths[i] for i in chunks[0]] == [5, 5, 6, 7]
    assert length_chunks([], max_size=4) == []
