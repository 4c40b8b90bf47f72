"""Decoding by content, resampling/mixing, error cases and segmentation (no model needed)."""

import numpy as np
import pytest

from services.speech.audio import SegmentationParams, decode, segment, sniff_format, speech_regions
from services.speech.errors import AudioTooLong, CorruptAudio, NoSpeech, UnsupportedAudio
from tests.speech.conftest import encode, stereo, voice, wav_bytes

PNG_HEADER = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.mark.parametrize(
    ("fmt", "subtype", "expected"),
    [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")],
)
def test_sniff_and_decode_each_format_to_16k_mono(fmt: str, subtype: str, expected: str) -> None:
    data = encode(stereo(voice(1.5, 44100)), 44100, fmt, subtype)
    assert sniff_format(data) == expected
    y = decode(data, sample_rate=16000, max_duration_s=60)
    assert y.ndim == 1
    assert y.dtype == np.float32
    # MP3 encoders add a little padding; lossless formats keep the exact length.
    assert abs(y.shape[0] - 1.5 * 16000) <= (0.1 * 16000 if expected in {"mp3", "ogg"} else 2)
    assert 0.05 < np.abs(y).max() < 1.0


def test_stereo_is_mixed_to_mono() -> None:
    left = voice(1.0, 16000)
    data = encode(np.stack([left, -left], axis=1), 16000, "WAV", "FLOAT")
    # Opposite channels cancel: proof that the channels are averaged, not one picked.
    assert np.abs(decode(data, sample_rate=16000, max_duration_s=60)).max() < 1e-6


def test_resampling_keeps_pitch() -> None:
    sr = 44100
    t = np.arange(sr) / sr
    y = decode(
        wav_bytes((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr), sample_rate=16000, max_duration_s=60
    )
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / y.shape[0] - 440) < 2


def test_png_is_unsupported_with_a_clear_message() -> None:
    with pytest.raises(UnsupportedAudio, match="PNG image"):
        decode(PNG_HEADER, sample_rate=16000, max_duration_s=60)


def test_random_bytes_are_unsupported() -> None:
    with pytest.raises(UnsupportedAudio, match="WAV, FLAC, OGG/Vorbis or MP3"):
        decode(b"hello, this is not audio at all", sample_rate=16000, max_duration_s=60)


def test_truncated_or_garbage_audio_is_corrupt() -> None:
    with pytest.raises(CorruptAudio, match="corrupt"):
        decode(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk", sample_rate=16000, max_duration_s=60)
    with pytest.raises(CorruptAudio):
        decode(b"fLaC" + bytes(range(256)) * 4, sample_rate=16000, max_duration_s=60)


def test_empty_input_is_no_speech() -> None:
    with pytest.raises(NoSpeech, match="empty"):
        decode(b"", sample_rate=16000, max_duration_s=60)
    with pytest.raises(NoSpeech, match="empty"):
        decode(wav_bytes(np.zeros(0, dtype=np.float32)), sample_rate=16000, max_duration_s=60)


def test_too_long_is_rejected_from_the_header() -> None:
    data = wav_bytes(voice(3.0))
    with pytest.raises(AudioTooLong, match="3.0 s; the limit is 2 s"):
        decode(data, sample_rate=16000, max_duration_s=2.0)


def test_silence_has_no_speech() -> None:
    params = SegmentationParams()
    with pytest.raises(NoSpeech, match="No speech"):
        segment(np.zeros(32000, dtype=np.float32), sample_rate=16000, params=params)
    hiss = (1e-4 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    with pytest.raises(NoSpeech):
        segment(hiss, sample_rate=16000, params=params)


def test_long_clip_is_windowed_and_silence_skipped() -> None:
    sr = 16000
    # 0-5 s speech, 5-7 s silence, 7-12 s speech.
    y = np.concatenate([voice(5.0, sr, seed=1), np.zeros(2 * sr, dtype=np.float32), voice(5.0, sr, seed=2)])
    params = SegmentationParams(window_s=3.0, hop_s=1.5)
    regions = speech_regions(y, sample_rate=sr, params=params)
    assert len(regions) == 2
    assert regions[0][0] / sr < 0.05 and abs(regions[0][1] / sr - 5.0) < 0.05
    assert abs(regions[1][0] / sr - 7.0) < 0.05 and regions[1][1] / sr > 11.95

    segments = segment(y, sample_rate=sr, params=params)
    assert len(segments) >= 4
    for seg in segments:
        assert seg.end - seg.start <= params.window_s + 1e-6
        assert not (seg.start < 6.9 and seg.end > 5.1), f"segment {seg.start}-{seg.end} covers the silent gap"
        assert seg.samples.shape[0] == pytest.approx((seg.end - seg.start) * sr, abs=1)
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    # Every second of speech is covered by some window.
    for t in np.arange(0.1, 12.0, 0.25):
        if 4.9 < t < 7.1:
            continue
        assert any(s.start <= t <= s.end for s in segments), t


def test_short_clip_is_one_segment_trimmed_to_the_speech() -> None:
    sr = 16000
    y = np.concatenate([np.zeros(sr // 2, dtype=np.float32), voice(2.0, sr), np.zeros(sr // 2, dtype=np.float32)])
    (seg,) = segment(y, sample_rate=sr, params=SegmentationParams())
    assert seg.start == pytest.approx(0.5, abs=0.05)
    assert seg.end == pytest.approx(2.5, abs=0.05)
