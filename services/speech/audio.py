"""Decoding uploaded audio (sniffed by content) and cutting it into speech segments.

Pure functions (no FastAPI): the service and ``training.speech`` both use them, so the model
sees the same 16 kHz mono segments at training and at inference time.
"""

import io
from dataclasses import dataclass
from typing import Any

import librosa
import numpy as np
import numpy.typing as npt
import soundfile as sf

from services.speech.errors import (
    CORRUPT_DETAIL,
    EMPTY_DETAIL,
    SILENT_DETAIL,
    TOO_LONG_DETAIL,
    UNSUPPORTED_DETAIL,
    AudioTooLong,
    CorruptAudio,
    NoSpeech,
    UnsupportedAudio,
)
from shared.sniff import AUDIO, sniff

FloatArray = npt.NDArray[np.float32]

#: Formats accepted, by the name :func:`sniff_format` gives them.
ACCEPTED_FORMATS = ("wav", "flac", "ogg", "mp3")

#: Absolute floor under which a frame counts as silence (about -60 dBFS RMS).
SILENCE_FLOOR = 1e-3


@dataclass(frozen=True)
class SegmentationParams:
    """How a clip is cut into windows that the model classifies one by one."""

    window_s: float = 3.0
    hop_s: float = 1.5
    #: Frames quieter than this many dB below the loudest frame are silence.
    top_db: float = 35.0
    #: Pauses shorter than this stay inside one speech region.
    merge_gap_s: float = 0.4
    #: Speech regions shorter than this are dropped as clicks/noise.
    min_region_s: float = 0.25
    #: A trailing window shorter than this is merged into the previous one.
    min_window_s: float = 1.0


@dataclass(frozen=True)
class Segment:
    """A stretch of the clip, in seconds, and its samples."""

    start: float
    end: float
    samples: FloatArray

    @property
    def duration(self) -> float:
        return self.end - self.start


def sniff_format(data: bytes) -> str:
    """The audio format of ``data`` judged by its magic bytes (:mod:`shared.sniff`); 415 if not one we accept."""
    fmt = sniff(data)
    if fmt is None or fmt not in AUDIO:
        found = "" if fmt is None else f" ({fmt.name} {fmt.kind})" if fmt.kind != "other" else f" ({fmt.name})"
        raise UnsupportedAudio(UNSUPPORTED_DETAIL.format(found=found))
    return fmt.name.lower()


def decode(data: bytes, *, sample_rate: int, max_duration_s: float) -> FloatArray:
    """Bytes of a WAV/FLAC/OGG/MP3 file -> mono float32 at ``sample_rate``.

    Raises NoSpeech (empty), UnsupportedAudio (not audio), AudioTooLong (checked from the header
    before the samples are decoded) and CorruptAudio (undecodable).
    """
    if not data:
        raise NoSpeech(EMPTY_DETAIL)
    fmt = sniff_format(data)
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            rate = handle.samplerate
            frames = handle.frames
            if rate <= 0:
                raise CorruptAudio(CORRUPT_DETAIL.format(reason="invalid sample rate"))
            # MP3 frame counts are estimated by libsndfile; still a good guard before decoding.
            if frames > 0 and frames / rate > max_duration_s:
                raise AudioTooLong(TOO_LONG_DETAIL.format(duration=frames / rate, limit=max_duration_s))
            limit = int(max_duration_s * rate) + 1
            samples = handle.read(frames=limit if frames <= 0 else min(frames, limit), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptAudio(CORRUPT_DETAIL.format(reason=f"{fmt}: {reason}")) from exc
    if samples.shape[0] / rate > max_duration_s:
        raise AudioTooLong(TOO_LONG_DETAIL.format(duration=samples.shape[0] / rate, limit=max_duration_s))
    if samples.size == 0:
        raise NoSpeech(EMPTY_DETAIL)
    mono = samples.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise CorruptAudio(CORRUPT_DETAIL.format(reason=f"{fmt}: non-finite samples"))
    if rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(mono, dtype=np.float32)


def speech_regions(
    y: npt.NDArray[np.floating[Any]], *, sample_rate: int, params: SegmentationParams
) -> list[tuple[int, int]]:
    """(start, end) sample ranges holding sound; empty for a silent clip."""
    frame = max(int(0.025 * sample_rate), 1)
    hop = max(int(0.010 * sample_rate), 1)
    if y.shape[0] < frame:
        return []
    rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=hop, center=True)[0]
    peak = float(rms.max())
    if peak < SILENCE_FLOOR:
        return []
    threshold = max(SILENCE_FLOOR, peak * 10 ** (-params.top_db / 20))
    active = rms >= threshold
    regions: list[tuple[int, int]] = []
    idx = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    for start_f, end_f in zip(idx[::2], idx[1::2], strict=True):
        start = max(int(start_f * hop - frame // 2), 0)
        end = min(int(end_f * hop + frame // 2), y.shape[0])
        if regions and start - regions[-1][1] < params.merge_gap_s * sample_rate:
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((start, end))
    return [(s, e) for s, e in regions if e - s >= params.min_region_s * sample_rate]


def segment(y: FloatArray, *, sample_rate: int, params: SegmentationParams) -> list[Segment]:
    """Cut the sound regions of ``y`` into windows; NoSpeech if there is none."""
    regions = speech_regions(y, sample_rate=sample_rate, params=params)
    if not regions:
        raise NoSpeech(SILENT_DETAIL)
    window = int(params.window_s * sample_rate)
    hop = int(params.hop_s * sample_rate)
    min_window = int(params.min_window_s * sample_rate)
    segments: list[Segment] = []
    for start, end in regions:
        bounds: list[tuple[int, int]] = []
        pos = start
        while True:
            stop = min(pos + window, end)
            bounds.append((pos, stop))
            if stop >= end:
                break
            pos += hop
        # A short tail window is folded into its predecessor rather than classified alone.
        if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_window:
            bounds.pop()
            bounds[-1] = (bounds[-1][0], end)
        segments.extend(Segment(start=s / sample_rate, end=e / sample_rate, samples=y[s:e]) for s, e in bounds)
    return segments
