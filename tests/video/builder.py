"""Small test videos and audio clips built with PyAV: synthetic face frames, a tone or a spoken fixture."""

import io
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from tests.image.synth import face_image, landscape_image

#: "Kids are talking by the door." spoken by espeak-ng (en-us), 16 kHz mono FLAC, 2.2 s.
SPOKEN_FIXTURE = Path(__file__).resolve().parents[1] / "asr" / "data" / "kids_talking.flac"
SPOKEN_TEXT = "Kids are talking by the door."

Container = Literal["mp4", "mov", "webm", "mkv", "flv"]
#: (FFmpeg muxer, video codec, audio codec, audio sample format) per container.
RECIPES: dict[str, tuple[str, str, str, str]] = {
    "mp4": ("mp4", "libx264", "aac", "fltp"),
    "mov": ("mov", "libx264", "aac", "fltp"),
    "webm": ("webm", "libvpx", "libopus", "flt"),
    "mkv": ("matroska", "libx264", "flac", "s16"),
    "flv": ("flv", "flv", "mp3", "fltp"),
}
CONTAINERS: tuple[Container, ...] = ("mp4", "mov", "webm", "mkv", "flv")


def spoken_samples(rate: int = 16_000) -> np.ndarray:
    """The spoken fixture as mono float32 at ``rate``."""
    return decode_audio(SPOKEN_FIXTURE.read_bytes(), rate=rate)


def tone(seconds: float, rate: int = 16_000) -> np.ndarray:
    """A voiced-like signal: 150 Hz with harmonics and a syllable-rate envelope, float32 mono."""
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    value = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    return (0.2 * envelope * value).astype(np.float32)


def decode_audio(data: bytes, *, rate: int = 16_000) -> np.ndarray:
    """Any audio PyAV reads -> mono float32 at ``rate``."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks = []
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32)


def encode_audio(samples: np.ndarray, *, fmt: str, codec: str, rate: int = 16_000) -> bytes:
    """Mono float32 samples -> an audio file (``fmt`` is the FFmpeg muxer, e.g. wav, flac, ogg, mp3)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        _write_audio(out, stream, samples, rate)
    return buffer.getvalue()


def _write_audio(out: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray, rate: int) -> None:
    sample_format = stream.codec_context.format.name
    resampler = av.AudioResampler(format=sample_format, layout="mono", rate=stream.codec_context.sample_rate)
    chunk = 1024
    pts = 0
    for i in range(0, len(samples), chunk):
        piece = samples[i : i + chunk].astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = pts
        frame.time_base = Fraction(1, rate)
        pts += piece.shape[1]
        for resampled in resampler.resample(frame):
            for packet in stream.encode(resampled):
                out.mux(packet)
    for resampled in resampler.resample(None):
        for packet in stream.encode(resampled):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def build_video(
    container: Container = "mp4",
    *,
    seconds: float = 4.0,
    fps: int = 10,
    size: tuple[int, int] = (320, 240),
    faces: bool = True,
    audio: Literal["speech", "tone"] | None = "speech",
) -> bytes:
    """A video in ``container`` with synthetic face (or landscape) frames and speech, a tone or no audio.

    ``speech`` places the spoken fixture from 0.5 s, padded with quiet to ``seconds``.
    """
    muxer, vcodec, acodec, _ = RECIPES[container]
    width, height = size
    if faces:
        picture = face_image(width, height, size=int(height * 0.75))
    else:
        picture = landscape_image(width, height)
    rgb = np.ascontiguousarray(picture[:, :, ::-1])
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as out:
        video = out.add_stream(vcodec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        if vcodec == "libx264":
            video.options = {"preset": "ultrafast"}
        audio_stream = None
        rate = 16_000 if acodec != "libopus" else 48_000
        if audio is not None:
            audio_stream = out.add_stream(acodec, rate=rate if acodec not in ("mp3", "aac") else 44_100, layout="mono")
        for i in range(int(seconds * fps)):
            # A little motion so encoders produce real inter frames.
            frame = av.VideoFrame.from_ndarray(np.roll(rgb, i % 3, axis=1), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio_stream is not None:
            samples = np.zeros(int(seconds * 16_000), np.float32)
            if audio == "speech":
                spoken = spoken_samples()
                start = 8_000
                samples[start : start + len(spoken)] = spoken[: len(samples) - start]
            else:
                samples = tone(seconds)
            _write_audio(out, audio_stream, samples, 16_000)
    return buffer.getvalue()
