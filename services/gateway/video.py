"""Video uploads -> sampled JPEG frames and a 16 kHz mono FLAC track, with PyAV (FFmpeg's libraries).

Pure and blocking: the route runs :func:`decode_video` in a worker thread, never on the event loop.
The container is recognised by the shared content sniffer; its length is read from the header and
refused (413) before any frame is decoded, and the decoder stops at the limit whatever the header said.
"""

import io
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final

import av
import numpy as np
from fastapi import UploadFile

from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from shared.sniff import FLV, MKV, MOV, MP4, WEBM, Format, names, sniff

#: Containers accepted, recognised by content.
VIDEO_FORMATS: Final = (MP4, MOV, WEBM, MKV, FLV)
AUDIO_RATE: Final = 16_000
CHUNK_BYTES: Final = 256 * 1024

UNSUPPORTED_VIDEO: Final = f"video must be one of {names(VIDEO_FORMATS)} (detected from its content{{found}})"
CORRUPT_VIDEO: Final = "The video could not be decoded ({reason}); the file looks corrupt or truncated"
EMPTY_VIDEO: Final = "The video has neither a picture nor a sound track"
VIDEO_TOO_LONG: Final = "The video lasts {duration:.1f} s; the limit is {limit:.0f} s"


class CorruptVideo(InvalidInput):
    """The bytes look like a supported container but do not decode."""

    code = "corrupt_video"


class VideoTooLong(PayloadTooLarge):
    """Longer than ``MAX_VIDEO_DURATION_S``."""

    code = "video_too_long"


@dataclass(frozen=True)
class SampledFrame:
    """One frame kept for the image service: its time and a JPEG of it."""

    time_s: float
    jpeg: bytes


@dataclass
class DecodedVideo:
    """What the pipeline needs from a video; ``missing`` names what the file did not have."""

    container: str
    duration_s: float
    width: int | None = None
    height: int | None = None
    #: Every decoded picture, sampled or not.
    frame_count: int = 0
    frames: list[SampledFrame] = field(default_factory=list)
    #: The sound track as 16-bit 16 kHz mono FLAC (lossless, about half a WAV's size, so ten minutes
    #: stay within the services' upload limits); None without an audio stream.
    audio_flac: bytes | None = None
    audio_duration_s: float | None = None
    missing: list[str] = field(default_factory=list)


def sample_rate_for(duration_s: float, *, frame_rate: float, max_frames: int) -> float:
    """The sampling rate actually used: ``frame_rate``, lowered so that at most ``max_frames`` are kept."""
    if duration_s <= 0:
        return frame_rate
    return min(frame_rate, max_frames / duration_s)


def header_duration(container: av.container.InputContainer) -> float | None:
    """The length the container's header declares (the longest stream's), or None when it says nothing."""
    candidates: list[float] = []
    if container.duration is not None and container.duration > 0:
        candidates.append(container.duration / av.time_base)
    for stream in container.streams:
        if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
            candidates.append(float(stream.duration * stream.time_base))
    return max(candidates) if candidates else None


def _jpeg_encoder(width: int, height: int) -> av.VideoCodecContext:
    codec = av.CodecContext.create("mjpeg", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"qmin": "2", "qmax": "6"}
    return codec


def _scaled(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    # Even sizes: the 4:2:0 JPEG encoder needs them.
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _flac(samples: np.ndarray) -> bytes:
    """16-bit mono samples at :data:`AUDIO_RATE` -> a FLAC file."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=AUDIO_RATE, layout="mono")
        chunk = 4096
        for start in range(0, samples.shape[0], chunk):
            piece = np.ascontiguousarray(samples[start : start + chunk], dtype=np.int16)[None, :]
            frame = av.AudioFrame.from_ndarray(piece, format="s16", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


async def read_video(file: UploadFile, *, max_bytes: int) -> bytes:
    """Read an upload in chunks (413 past ``max_bytes``), then check it is a video container (415, 422 if empty)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"video exceeds the {max_bytes:,}-byte limit")
        chunks.append(chunk)
    content = b"".join(chunks)
    if not content:
        raise InvalidInput("video is an empty file")
    check_format(content)
    return content


def check_format(data: bytes) -> Format:
    """The container by content, or 415 naming what was sent."""
    fmt = sniff(data)
    if fmt is None or fmt not in VIDEO_FORMATS:
        found = f": {fmt.name}" if fmt is not None else ""
        raise UnsupportedMediaType(UNSUPPORTED_VIDEO.format(found=found))
    return fmt


def decode_video(
    data: bytes,
    *,
    max_duration_s: float,
    frame_rate: float,
    max_frames: int,
    max_frame_side: int = 640,
) -> DecodedVideo:
    """Decode ``data``: frames sampled at ``frame_rate`` (at most ``max_frames``) and the whole sound track.

    Raises 415 (not an accepted container), 413 (longer than ``max_duration_s``: from the header
    when it says, else while decoding) and 422 (corrupt, or no picture and no sound).
    """
    fmt = check_format(data)
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise CorruptVideo(CORRUPT_VIDEO.format(reason=type(exc).__name__)) from exc
    with container:
        declared = header_duration(container)
        if declared is not None and declared > max_duration_s:
            raise VideoTooLong(VIDEO_TOO_LONG.format(duration=declared, limit=max_duration_s))
        video_stream = container.streams.video[0] if container.streams.video else None
        audio_stream = container.streams.audio[0] if container.streams.audio else None
        if video_stream is None and audio_stream is None:
            raise CorruptVideo(EMPTY_VIDEO)
        result = DecodedVideo(container=fmt.name, duration_s=declared or 0.0)
        rate = sample_rate_for(declared or max_duration_s, frame_rate=frame_rate, max_frames=max_frames)
        try:
            _decode_streams(
                container,
                video_stream=video_stream,
                audio_stream=audio_stream,
                result=result,
                rate=rate,
                max_duration_s=max_duration_s,
                max_frames=max_frames,
                max_frame_side=max_frame_side,
            )
        except av.FFmpegError as exc:
            raise CorruptVideo(CORRUPT_VIDEO.format(reason=type(exc).__name__)) from exc
    if video_stream is None:
        result.missing.append("video track")
    elif result.frame_count == 0:
        raise CorruptVideo(CORRUPT_VIDEO.format(reason="no picture could be decoded"))
    if audio_stream is None:
        result.missing.append("audio track")
    return result


def _decode_streams(
    container: av.container.InputContainer,
    *,
    video_stream: av.VideoStream | None,
    audio_stream: av.AudioStream | None,
    result: DecodedVideo,
    rate: float,
    max_duration_s: float,
    max_frames: int,
    max_frame_side: int,
) -> None:
    streams = [s for s in (video_stream, audio_stream) if s is not None]
    if video_stream is not None:
        video_stream.thread_type = "AUTO"
    resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE) if audio_stream else None
    chunks: list[np.ndarray] = []
    samples = 0
    audio_limit = int(max_duration_s * AUDIO_RATE)
    encoder: av.VideoCodecContext | None = None
    next_sample = 0.0
    last_time = 0.0
    first_time: float | None = None
    for packet in container.demux(streams):
        for frame in packet.decode():
            if isinstance(frame, av.VideoFrame):
                time_s = float(frame.time) if frame.time is not None else result.frame_count / float(rate or 1)
                first_time = time_s if first_time is None else first_time
                time_s = max(0.0, time_s - first_time)
                if time_s > max_duration_s:
                    raise VideoTooLong(VIDEO_TOO_LONG.format(duration=time_s, limit=max_duration_s))
                result.frame_count += 1
                last_time = max(last_time, time_s)
                if time_s + 1e-6 >= next_sample and len(result.frames) < max_frames:
                    if encoder is None:
                        result.width, result.height = frame.width, frame.height
                        encoder = _jpeg_encoder(*_scaled(frame.width, frame.height, max_frame_side))
                    picture = frame.reformat(width=encoder.width, height=encoder.height, format="yuvj420p")
                    jpeg = b"".join(bytes(p) for p in encoder.encode(picture))
                    result.frames.append(SampledFrame(time_s=round(time_s, 3), jpeg=jpeg))
                    next_sample += 1.0 / rate
                    while next_sample <= time_s:
                        next_sample += 1.0 / rate
            elif isinstance(frame, av.AudioFrame) and resampler is not None:
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    samples += chunk.shape[0]
                if samples > audio_limit:
                    raise VideoTooLong(VIDEO_TOO_LONG.format(duration=samples / AUDIO_RATE, limit=max_duration_s))
    if resampler is not None:
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    if chunks:
        track = np.concatenate(chunks)
        result.audio_flac = _flac(track)
        result.audio_duration_s = track.shape[0] / AUDIO_RATE
    frame_span = last_time + (
        1.0 / float(video_stream.average_rate) if video_stream and video_stream.average_rate else 0.0
    )
    measured = max(frame_span if result.frame_count else 0.0, result.audio_duration_s or 0.0)
    if measured > 0:
        result.duration_s = measured
