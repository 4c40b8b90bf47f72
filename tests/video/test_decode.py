"""Decoding uploads with PyAV: every container, sampling, limits, and what a file lacks."""

import io

import av
import numpy as np
import pytest

from services.gateway.video import CorruptVideo, VideoTooLong, decode_video, sample_rate_for
from shared.errors import UnsupportedMediaType
from tests.video.builder import CONTAINERS, build_video, encode_audio, tone


def decode(data: bytes, **overrides: float) -> object:
    options = {"max_duration_s": 600.0, "frame_rate": 2.0, "max_frames": 1200}
    options.update(overrides)
    return decode_video(data, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("container", CONTAINERS)
def test_every_container_gives_frames_at_the_rate_and_the_sound_track(container: str) -> None:
    video = decode_video(build_video(container, seconds=3.0), max_duration_s=600, frame_rate=2.0, max_frames=1200)
    assert video.container.lower() == {"mkv": "mkv", "webm": "webm"}.get(container, container)
    assert video.duration_s == pytest.approx(3.0, abs=0.1)
    assert video.frame_count == 30
    assert [f.time_s for f in video.frames] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5], abs=0.01)
    assert all(f.jpeg.startswith(b"\xff\xd8\xff") for f in video.frames)
    assert (video.width, video.height) == (320, 240)
    assert video.audio_flac is not None and video.audio_flac.startswith(b"fLaC")
    assert video.audio_duration_s == pytest.approx(3.0, abs=0.1)
    assert video.missing == []


def test_the_sound_track_is_the_spoken_audio_at_16k() -> None:
    video = decode_video(build_video("mkv", seconds=3.0), max_duration_s=600, frame_rate=2.0, max_frames=1200)
    assert video.audio_flac is not None
    with av.open(io.BytesIO(video.audio_flac)) as flac:
        stream = flac.streams.audio[0]
        assert (stream.rate, stream.channels) == (16_000, 1)
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in flac.decode(audio=0)])
    # Quiet before 0.5 s, speech after.
    assert np.abs(samples[:7000]).max() < 50
    assert np.abs(samples[8000:40000]).max() > 3000


def test_a_video_without_audio_says_so() -> None:
    video = decode_video(build_video("mp4", audio=None), max_duration_s=600, frame_rate=2.0, max_frames=1200)
    assert video.audio_flac is None
    assert video.missing == ["audio track"]
    assert len(video.frames) == 8


def test_an_audio_only_file_in_a_video_container_has_no_frames() -> None:
    data = encode_audio(tone(2.0), fmt="matroska", codec="flac")
    video = decode_video(data, max_duration_s=600, frame_rate=2.0, max_frames=1200)
    assert video.frames == [] and video.missing == ["video track"]
    assert video.duration_s == pytest.approx(2.0, abs=0.05)


def test_the_frame_cap_lowers_the_sampling_rate() -> None:
    assert sample_rate_for(600.0, frame_rate=2.0, max_frames=600) == pytest.approx(1.0)
    assert sample_rate_for(10.0, frame_rate=2.0, max_frames=600) == 2.0
    video = decode_video(build_video("mkv", seconds=4.0), max_duration_s=600, frame_rate=2.0, max_frames=4)
    assert [f.time_s for f in video.frames] == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.01)


def test_too_long_is_refused_from_the_header_before_decoding() -> None:
    data = build_video("mp4", seconds=3.0)
    with pytest.raises(VideoTooLong, match=r"3\.0 s; the limit is 2 s"):
        decode_video(data, max_duration_s=2.0, frame_rate=2.0, max_frames=1200)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), UnsupportedMediaType),
        (b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(100), UnsupportedMediaType),
        (b"hello world, not a video at all" * 4, UnsupportedMediaType),
    ],
)
def test_other_types_are_415(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_video(data, max_duration_s=600, frame_rate=2.0, max_frames=1200)


@pytest.mark.parametrize("container", ["mp4", "webm", "flv"])
def test_a_truncated_or_garbled_video_is_422(container: str) -> None:
    data = build_video(container, seconds=2.0)
    garbled = data[:64] + bytes(len(data) - 64)
    with pytest.raises(CorruptVideo):
        decode_video(garbled, max_duration_s=600, frame_rate=2.0, max_frames=1200)
