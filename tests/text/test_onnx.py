"""The onnxruntime serving path gives the PyTorch model's answers (same top label, same probabilities)."""

import numpy as np
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
