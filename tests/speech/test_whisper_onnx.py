"""The onnxruntime encoder is the NumPy network, as one graph: the same states from the same verified weights."""

import numpy as np
import pytest

from services.speech.encoder import FINAL, WhisperEncoder, load_encoder
from services.speech.features import WhisperMelParams, whisper_logmel
from services.speech.whisper_onnx import OnnxWhisperEncoder
from tests.speech.conftest import voice


@pytest.fixture(scope="module")
def reference() -> WhisperEncoder:
    return load_encoder(runtime="numpy")


@pytest.fixture(scope="module")
def onnx_encoder() -> WhisperEncoder:
    return load_encoder(runtime="onnx")


def test_the_onnx_runtime_is_chosen_by_name(onnx_encoder: WhisperEncoder, reference: WhisperEncoder) -> None:
    assert isinstance(onnx_encoder.network, OnnxWhisperEncoder)
    assert not isinstance(reference.network, OnnxWhisperEncoder)
    assert onnx_encoder.num_layers == reference.num_layers == 6
    with pytest.raises(ValueError, match="unknown encoder runtime"):
        load_encoder(runtime="tpu")


def test_every_layer_matches_the_numpy_network(onnx_encoder: WhisperEncoder, reference: WhisperEncoder) -> None:
    mel = whisper_logmel(voice(2.5, f0=180, seed=3), WhisperMelParams())
    expected = reference.network.layers(mel)
    got = onnx_encoder.network.layers(mel)
    assert len(got) == len(expected) == 7
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.shape == theirs.shape == (125, 512)
        # Large-magnitude channels of the deep blocks reach ~100: compare relative to the layer's scale.
        np.testing.assert_allclose(ours, theirs, atol=1e-4 * float(np.abs(theirs).max()) + 1e-5)


def test_pooled_layers_and_batches_match(onnx_encoder: WhisperEncoder, reference: WhisperEncoder) -> None:
    # Two 3 s windows share one pass, the 1.2 s one runs on its own; order is kept; FINAL works too.
    windows = [voice(3.0, f0=150, seed=7), voice(1.2, f0=220, seed=8), voice(3.0, f0=300, seed=9)]
    layers = [1, 4, 6, FINAL]
    got = onnx_encoder.pooled_layers_batch(windows, layers)
    expected = reference.pooled_layers_batch(windows, layers)
    assert len(got) == 3
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.shape == (4, 1024)
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)


def test_a_truncated_onnx_encoder_runs_only_its_blocks() -> None:
    short = load_encoder(runtime="onnx", num_layers=3)
    states = short.network.layers(whisper_logmel(voice(1.0, seed=2), WhisperMelParams()))
    assert len(states) == 4 and all(s.shape == (50, 512) for s in states)


def test_more_windows_than_one_pass_takes_keep_their_order(onnx_encoder: WhisperEncoder) -> None:
    from services.speech.encoder import MAX_WINDOWS_PER_PASS

    windows = [voice(1.0, f0=120 + 25 * k, seed=k) for k in range(MAX_WINDOWS_PER_PASS + 2)]
    batched = onnx_encoder.pooled_layers_batch(windows, [2, 5])
    for k, window in enumerate(windows):
        np.testing.assert_allclose(batched[k], onnx_encoder.pooled_layers(window, [2, 5]), rtol=1e-4, atol=1e-4)
