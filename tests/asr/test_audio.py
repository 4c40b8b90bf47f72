"""Decoding uploads for the transcription service: formats by content, header-first length check."""

import numpy as np
import pytest

from services.asr.audio import decode
from services.asr.errors import AudioTooLong, CorruptAudio, EmptyAudio, UnsupportedAudio
from services.asr.model import SAMPLE_RATE
from tests.video.builder import build_video, encode_audio, tone


@pytest.mark.parametrize(
    ("fmt", "codec"), [("wav", "pcm_s16le"), ("flac", "flac"), ("ogg", "libopus"), ("mp3", "libmp3lame")]
)
def test_every_accepted_format_decodes_to_16k_mono(fmt: str, codec: str) -> None:
    rate = 48_000 if codec == "libopus" else 16_000
    data = encode_audio(tone(1.5, rate), fmt=fmt, codec=codec, rate=rate)
    samples = decode(data, max_duration_s=30)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.shape[0] / SAMPLE_RATE == pytest.approx(1.5, abs=0.1)
    assert 0.05 < float(np.abs(samples).max()) <= 1.0


def test_a_clip_over_the_limit_is_refused_from_its_header() -> None:
    data = encode_audio(tone(3.0), fmt="wav", codec="pcm_s16le")
    with pytest.raises(AudioTooLong, match="3.0 s; the limit is 2 s"):
        decode(data, max_duration_s=2.0)


def test_non_audio_and_video_containers_are_415() -> None:
    with pytest.raises(UnsupportedAudio):
        decode(b"\x89PNG\r\n\x1a\n" + bytes(100), max_duration_s=30)
    with pytest.raises(UnsupportedAudio):
        decode(build_video("mp4", seconds=1.0), max_duration_s=30)


def test_empty_and_truncated_files_are_422() -> None:
    with pytest.raises(EmptyAudio):
        decode(b"", max_duration_s=30)
    data = encode_audio(tone(1.0), fmt="flac", codec="flac")
    with pytest.raises(CorruptAudio):
        decode(data[:60], max_duration_s=30)
