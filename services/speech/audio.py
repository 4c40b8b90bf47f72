"""Decoding uploaded audio (sniffed by content) and cutting it into speech segments.

Pure functions (no FastAPI): the service and ``training.speech`` both use them, so the model
sees the same 16 kHz mono segments at training and at inference time.
"""

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from services.speech.errors import (
    BATCH_TOO_LONG_DETAIL,
    CORRUPT_DETAIL,
    EMPTY_DETAIL,
    SAMPLE_RATE_DETAIL,
    SILENT_DETAIL,
    TOO_LONG_DETAIL,
    TOO_MANY_CHANNELS_DETAIL,
    TOO_MANY_SAMPLES_DETAIL,
    UNSUPPORTED_DETAIL,
    AudioTooBig,
    AudioTooLong,
    CorruptAudio,
    NoSpeech,
    UnsupportedAudio,
    UnsupportedLayout,
)
from shared.errors import ServiceError
from shared.sniff import AUDIO, sniff

FloatArray = npt.NDArray[np.float32]

#: Formats accepted, by the name :func:`sniff_format` gives them.
ACCEPTED_FORMATS = ("wav", "flac", "ogg", "mp3")

#: Header limits checked before decoding. Speech needs one channel; 8 covers 7.1 recordings.
MAX_CHANNELS = 8
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
#: The decode budget (channels x frames) is the duration limit at this rate and channel count.
BUDGET_RATE = 48_000
BUDGET_CHANNELS = 2
#: A batch may hold this many times the clip duration limit in total (its mono clips stay in memory together).
BATCH_DURATION_FACTOR = 2.0
#: Frames decoded per block: 8 channels x 65536 x 4 bytes = 2 MiB at most in flight.
BLOCK_FRAMES = 65_536

_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, EOFError, OverflowError)

#: Frames per chunk when measuring loudness (8192 x 400 samples x 4 bytes = 13 MB of temporaries).
RMS_CHUNK_FRAMES = 8192

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


@dataclass(frozen=True)
class AudioHeader:
    """What the container says about the stream, read before any sample is decoded."""

    format: str
    sample_rate: int
    channels: int
    #: Frame count from the header; <= 0 when the container does not say (decoding then stops at the limit).
    frames: int


def max_decoded_samples(max_duration_s: float) -> int:
    """Decode budget in samples (channels x frames): the duration limit at stereo 48 kHz."""
    return int(max_duration_s * BUDGET_RATE * BUDGET_CHANNELS)


def check_header(header: AudioHeader, *, max_duration_s: float) -> None:
    """Refuse from the header alone: odd layouts (422), too long (413), too many samples to decode (413)."""
    if header.channels < 1:
        raise CorruptAudio(CORRUPT_DETAIL.format(reason=f"{header.format}: no channels"))
    if header.channels > MAX_CHANNELS:
        raise UnsupportedLayout(TOO_MANY_CHANNELS_DETAIL.format(channels=header.channels, limit=MAX_CHANNELS))
    if not MIN_SAMPLE_RATE <= header.sample_rate <= MAX_SAMPLE_RATE:
        raise UnsupportedLayout(
            SAMPLE_RATE_DETAIL.format(rate=header.sample_rate, low=MIN_SAMPLE_RATE, high=MAX_SAMPLE_RATE)
        )
    # MP3 frame counts are estimated by libsndfile; decoding re-checks as it goes.
    duration = header.frames / header.sample_rate
    if duration > max_duration_s:
        raise AudioTooLong(TOO_LONG_DETAIL.format(duration=duration, limit=max_duration_s))
    samples, budget = header.frames * header.channels, max_decoded_samples(max_duration_s)
    if samples > budget:
        raise AudioTooBig(TOO_MANY_SAMPLES_DETAIL.format(samples=samples, limit=budget))


def _corrupt(fmt: str, exc: BaseException) -> CorruptAudio:
    # libsndfile's own message, without soundfile's "Error opening <_io.BytesIO object at 0x...>:" prefix.
    text = str(getattr(exc, "error_string", "") or exc)
    reason = text.splitlines()[0] if text else type(exc).__name__
    return CorruptAudio(CORRUPT_DETAIL.format(reason=f"{fmt}: {reason}"))


def read_header(data: bytes) -> AudioHeader:
    """Sniff and open ``data`` lazily: the header only, no samples (415/422 as :func:`decode`)."""
    if not data:
        raise NoSpeech(EMPTY_DETAIL)
    fmt = sniff_format(data)
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            return AudioHeader(fmt, int(handle.samplerate), int(handle.channels), int(handle.frames))
    except _DECODE_ERRORS as exc:
        raise _corrupt(fmt, exc) from exc


def check_batch(clips: Sequence[bytes], *, max_duration_s: float, max_total_s: float | None = None) -> None:
    """413 when a batch's clips together last longer than ``max_total_s`` (default: twice the clip
    limit), judged from their headers before any is decoded. Clips whose header does not read are
    left to :func:`decode` to report."""
    limit = max_total_s if max_total_s is not None else BATCH_DURATION_FACTOR * max_duration_s
    total = 0.0
    for data in clips:
        try:
            header = read_header(data)
        except ServiceError:
            continue
        if header.sample_rate > 0 and header.frames > 0:
            total += header.frames / header.sample_rate
    if total > limit:
        raise AudioTooLong(BATCH_TOO_LONG_DETAIL.format(duration=total, limit=limit))


def decode(data: bytes, *, sample_rate: int, max_duration_s: float) -> FloatArray:
    """Bytes of a WAV/RF64/FLAC/OGG (Vorbis, Opus)/MP3 file -> mono float32 at ``sample_rate``.

    The header is checked first (:func:`check_header`), then the stream is decoded, mixed down and
    resampled block by block, so memory stays at the mono output plus one block whatever the
    channel count or rate. Raises NoSpeech (empty), UnsupportedAudio (not audio), UnsupportedLayout,
    AudioTooLong / AudioTooBig (before decoding, and again while decoding when the header lied) and
    CorruptAudio (undecodable).
    """
    if not data:
        raise NoSpeech(EMPTY_DETAIL)
    fmt = sniff_format(data)
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            header = AudioHeader(fmt, int(handle.samplerate), int(handle.channels), int(handle.frames))
            check_header(header, max_duration_s=max_duration_s)
            mono = _decode_mono(handle, header, sample_rate=sample_rate, max_duration_s=max_duration_s)
    except _DECODE_ERRORS as exc:
        raise _corrupt(fmt, exc) from exc
    if mono.size == 0:
        raise NoSpeech(EMPTY_DETAIL)
    return mono


def _decode_mono(handle: sf.SoundFile, header: AudioHeader, *, sample_rate: int, max_duration_s: float) -> FloatArray:
    """Read, mix down and resample in blocks; stop as soon as the stream passes the duration limit."""
    rate, channels = header.sample_rate, header.channels
    limit = int(max_duration_s * rate)
    resampler = (
        soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ") if rate != sample_rate else None
    )
    # The output is written into one buffer sized from the header (no second copy to concatenate).
    expected = int(np.ceil(header.frames * sample_rate / rate)) + 64 if header.frames > 0 else 0
    out = np.empty(expected, dtype=np.float32)
    extra: list[FloatArray] = []
    filled = read = 0

    def put(chunk: FloatArray) -> None:
        nonlocal filled
        room = max(0, min(chunk.shape[0], expected - filled))
        out[filled : filled + room] = chunk[:room]
        filled += room
        if room < chunk.shape[0]:
            extra.append(np.array(chunk[room:], dtype=np.float32))

    for block in handle.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True, frames=limit + 1):
        read += block.shape[0]
        if read > limit:
            raise AudioTooLong(TOO_LONG_DETAIL.format(duration=read / rate, limit=max_duration_s))
        mono = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float32)
        if not np.all(np.isfinite(mono)):
            raise CorruptAudio(CORRUPT_DETAIL.format(reason=f"{header.format}: non-finite samples"))
        put(np.asarray(resampler.resample_chunk(mono) if resampler else mono, dtype=np.float32))
    if resampler is not None and read:
        put(np.asarray(resampler.resample_chunk(np.zeros(0, np.float32), last=True), dtype=np.float32))
    if extra:
        return np.concatenate([out[:filled], *extra])
    return out[:filled]


def frame_rms(y: npt.NDArray[np.floating[Any]], *, frame: int, hop: int) -> npt.NDArray[np.floating[Any]]:
    """The values of ``librosa.feature.rms(y, center=True)[0]``, a few thousand frames at a time.

    librosa squares every frame at once (frame/hop times the clip: ~100 MB for 10 minutes at
    16 kHz) and took ~16 s per minute of audio here; chunks of row frames give the same values
    with a bounded temporary, in milliseconds.
    """
    pad = frame // 2
    n = y.shape[0]
    n_frames = 1 + (n + 2 * pad - frame) // hop
    parts = []
    for f0 in range(0, n_frames, RMS_CHUNK_FRAMES):
        f1 = min(f0 + RMS_CHUNK_FRAMES, n_frames)
        start, stop = f0 * hop - pad, (f1 - 1) * hop + frame - pad
        chunk = y[max(start, 0) : min(stop, n)]
        if start < 0 or stop > n:
            chunk = np.pad(chunk, (max(0, -start), max(0, stop - n)))
        # Frames as rows (contiguous): librosa reduces across strided columns, ~500x slower here.
        frames = np.lib.stride_tricks.sliding_window_view(chunk, frame)[::hop]
        parts.append(np.sqrt(np.mean(np.square(frames), axis=1)))
    return np.concatenate(parts)


def speech_regions(
    y: npt.NDArray[np.floating[Any]], *, sample_rate: int, params: SegmentationParams
) -> list[tuple[int, int]]:
    """(start, end) sample ranges holding sound; empty for a silent clip."""
    frame = max(int(0.025 * sample_rate), 1)
    hop = max(int(0.010 * sample_rate), 1)
    if y.shape[0] < frame:
        return []
    rms = frame_rms(y, frame=frame, hop=hop)
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
