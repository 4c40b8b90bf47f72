"""Uploaded audio bytes -> 16 kHz mono float32 with PyAV (FFmpeg), the length checked from the header first."""

import io

import av
import numpy as np

from services.asr.errors import (
    CORRUPT_DETAIL,
    EMPTY_DETAIL,
    TOO_LONG_DETAIL,
    UNSUPPORTED_DETAIL,
    AudioTooLong,
    CorruptAudio,
    EmptyAudio,
    UnsupportedAudio,
)
from services.asr.model import SAMPLE_RATE, FloatArray
from shared.sniff import AUDIO, sniff

#: FFmpeg demuxer names for the accepted formats (the shared sniffer decides first, by content).
ACCEPTED_DEMUXERS = frozenset({"wav", "w64", "flac", "ogg", "mp3"})


def decode(data: bytes, *, max_duration_s: float) -> FloatArray:
    """Decode WAV/FLAC/OGG/MP3 bytes to 16 kHz mono float32.

    Raises EmptyAudio, UnsupportedAudio (415), AudioTooLong (413, from the header when it says,
    else while decoding) and CorruptAudio (422).
    """
    if not data:
        raise EmptyAudio(EMPTY_DETAIL)
    if sniff(data) not in AUDIO:
        raise UnsupportedAudio(UNSUPPORTED_DETAIL)
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise CorruptAudio(CORRUPT_DETAIL.format(reason=type(exc).__name__)) from exc
    with container:
        names = set(container.format.name.split(","))
        if not names & ACCEPTED_DEMUXERS or not container.streams.audio:
            raise UnsupportedAudio(UNSUPPORTED_DETAIL)
        if container.duration is not None and container.duration / av.time_base > max_duration_s:
            raise AudioTooLong(TOO_LONG_DETAIL.format(duration=container.duration / av.time_base, limit=max_duration_s))
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        limit = int(max_duration_s * SAMPLE_RATE)
        chunks: list[FloatArray] = []
        total = 0
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    chunks.append(chunk)
                    total += chunk.shape[0]
                if total > limit:
                    raise AudioTooLong(TOO_LONG_DETAIL.format(duration=total / SAMPLE_RATE, limit=max_duration_s))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        except av.FFmpegError as exc:
            raise CorruptAudio(CORRUPT_DETAIL.format(reason=type(exc).__name__)) from exc
    if not chunks:
        raise CorruptAudio(CORRUPT_DETAIL.format(reason="no audio frames"))
    samples = np.concatenate(chunks)
    if not np.all(np.isfinite(samples)):
        raise CorruptAudio(CORRUPT_DETAIL.format(reason="non-finite samples"))
    return samples
