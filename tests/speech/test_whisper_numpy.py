"""The NumPy Whisper encoder is the same network as CTranslate2's, read from the same verified file."""

from pathlib import Path

import numpy as np
import pytest

from services.speech.encoder import FINAL, WhisperEncoder, load_encoder
from services.speech.features import WhisperMelParams, whisper_logmel
from services.speech.whisper_numpy import ModelFileError, NumpyWhisperEncoder, read_ct2_variables
from tests.speech.conftest import voice


@pytest.fixture(scope="module")
def encoder() -> WhisperEncoder:
    return load_encoder()


def test_last_layer_matches_ctranslate2(encoder: WhisperEncoder) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    mel = whisper_logmel(voice(2.5, f0=180, seed=3), WhisperMelParams())
    reference = ctranslate2.models.Whisper(str(encoder.folder), device="cpu", compute_type="float32", intra_threads=1)
    expected = np.asarray(reference.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))[0]
    ours = encoder.network.output(mel)
    assert ours.shape == expected.shape == (125, 512)
    np.testing.assert_allclose(ours, expected, atol=2e-3)


def test_a_truncated_encoder_gives_the_same_middle_layers(encoder: WhisperEncoder) -> None:
    y = voice(1.8, f0=140, seed=5)
    full = encoder.pooled_layers(y, [2, 3, 4, FINAL])
    short = load_encoder(num_layers=4)
    assert short.num_layers == 4
    np.testing.assert_allclose(short.pooled_layers(y, [2, 3, 4]), full[:3], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs all 6 blocks"):
        short.network.output(whisper_logmel(y, WhisperMelParams()))


def test_every_layer_is_pooled_to_mean_and_std(encoder: WhisperEncoder) -> None:
    pooled = encoder.pooled_layers(voice(1.0, seed=1), [0, 1, 6, FINAL])
    assert pooled.shape == (4, 1024) and np.isfinite(pooled).all()
    # Standard deviations are non-negative; the final layer norm changes the last block's states.
    assert (pooled[:, 512:] >= 0).all()
    assert not np.allclose(pooled[2], pooled[3])


def test_a_truncated_file_is_refused(encoder: WhisperEncoder, tmp_path: Path) -> None:
    cut = tmp_path / "model.bin"
    cut.write_bytes((encoder.folder / "model.bin").read_bytes()[:5_000_000])
    with pytest.raises(ModelFileError, match="truncated"):
        read_ct2_variables(cut)
    with pytest.raises(ModelFileError):
        cut.write_bytes(b"\x01\x00\x00\x00")
        read_ct2_variables(cut)


def test_num_heads_and_depth_come_from_the_file(encoder: WhisperEncoder) -> None:
    network: NumpyWhisperEncoder = encoder.network
    assert (network.num_heads, network.depth, network.width) == (8, 6, 512)


def test_a_batch_of_windows_gives_each_window_its_own_states(encoder: WhisperEncoder) -> None:
    # Two 3 s windows share one pass, the 1.2 s one runs on its own; order is kept.
    windows = [voice(3.0, f0=150, seed=7), voice(1.2, f0=220, seed=8), voice(3.0, f0=300, seed=9)]
    batched = encoder.pooled_layers_batch(windows, [1, 4, FINAL])
    one_by_one = [encoder.pooled_layers(w, [1, 4, FINAL]) for w in windows]
    assert len(batched) == 3
    for got, expected in zip(batched, one_by_one, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_gelu_is_the_exact_erf_gelu() -> None:
    from scipy.special import erf

    from services.speech.whisper_numpy import _gelu

    x = (np.random.default_rng(0).standard_normal((64, 256)) * 4).astype(np.float32)
    exact = 0.5 * x.astype(np.float64) * (1 + erf(x.astype(np.float64) / np.sqrt(2)))
    got = _gelu(x.copy())
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, exact, atol=1e-6)


def test_frame_means_average_consecutive_frames_and_keep_the_tail() -> None:
    from services.speech.encoder import frame_means

    states = np.arange(2 * 10 * 3, dtype=np.float32).reshape(2, 10, 3)
    out = frame_means(states, 4)
    assert out.shape == (2, 3, 3)
    np.testing.assert_allclose(out[1, 0], states[1, :4].mean(0))
    np.testing.assert_allclose(out[0, 2], states[0, 8:].mean(0))  # the last two frames alone
    np.testing.assert_array_equal(frame_means(states, 1), states)
