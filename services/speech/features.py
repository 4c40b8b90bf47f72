"""Utterance-level acoustic features: the one extraction used by training and by the service.

A speech segment (mono float32 at ``FeatureParams.sample_rate``) becomes a fixed-length vector of
statistics (mean, std, percentiles) of frame-level descriptors: MFCCs and their deltas, log-mel
bands, spectral contrast/shape, energy, zero-crossing rate and pitch (YIN). The parameters are
saved next to the model as JSON so inference always extracts exactly what the model was trained on.
"""

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

#: Bump when the extraction code changes in a way that alters the vectors.
FEATURE_VERSION = 1


@dataclass(frozen=True)
class FeatureParams:
    """Everything that determines a feature vector."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 40
    n_mfcc: int = 20
    fmin: float = 50.0
    fmax: float = 8000.0
    f0_min: float = 60.0
    f0_max: float = 500.0
    #: Segments are scaled to this RMS level first, so the vector does not depend on recording gain.
    target_rms: float = 0.05
    #: Frames quieter than this (dB below the loudest frame) are left out of the statistics.
    frame_top_db: float = 40.0
    version: int = FEATURE_VERSION

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of these parameters."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FeatureParams":
        """Parameters from :meth:`to_json` output (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown feature parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def save(self, path: Path) -> None:
        """Write the parameters as JSON."""
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "FeatureParams":
        """Read parameters written by :meth:`save`."""
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))

    @property
    def min_samples(self) -> int:
        """Shortest segment that yields meaningful frames."""
        return self.n_fft


def _stats(matrix: npt.NDArray[np.floating[Any]]) -> FloatArray:
    """Per-row mean, std, 10th/50th/90th percentiles of a (d, frames) matrix."""
    if matrix.shape[1] == 0:
        return np.zeros(matrix.shape[0] * 5, dtype=np.float32)
    percentiles = np.percentile(matrix, [10, 50, 90], axis=1)
    return np.concatenate([matrix.mean(axis=1), matrix.std(axis=1), *percentiles]).astype(np.float32)


def feature_size(params: FeatureParams) -> int:
    """Length of the vector :func:`extract` returns."""
    return int(extract(np.zeros(params.sample_rate, dtype=np.float32), params).shape[0])


def extract(segment: npt.NDArray[np.floating[Any]], params: FeatureParams) -> FloatArray:
    """The feature vector of one mono segment sampled at ``params.sample_rate``."""
    y = np.asarray(segment, dtype=np.float32)
    if y.shape[0] < params.min_samples:
        y = np.pad(y, (0, params.min_samples - y.shape[0]))
    rms_all = float(np.sqrt(np.mean(y**2)))
    if rms_all > 1e-8:
        y = y * (params.target_rms / rms_all)
    sr = params.sample_rate
    stft = np.abs(librosa.stft(y, n_fft=params.n_fft, hop_length=params.hop_length, center=True))
    power = stft**2
    mel = librosa.feature.melspectrogram(
        S=power, sr=sr, n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax, htk=False
    )
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    rms = librosa.feature.rms(S=stft, frame_length=params.n_fft)[0]
    rms_db = librosa.amplitude_to_db(rms, ref=1.0, amin=1e-6)

    # Keep only frames with signal: silence between words would otherwise dominate the statistics.
    active = rms_db >= rms_db.max() - params.frame_top_db
    if active.sum() < 3:
        active = np.ones_like(active)

    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=params.n_mfcc)
    width = min(9, mfcc.shape[1] if mfcc.shape[1] % 2 else mfcc.shape[1] - 1)
    if width >= 3:
        d1 = librosa.feature.delta(mfcc, width=width, order=1)
        d2 = librosa.feature.delta(mfcc, width=width, order=2)
    else:
        d1 = np.zeros_like(mfcc)
        d2 = np.zeros_like(mfcc)
    contrast = librosa.feature.spectral_contrast(S=stft, sr=sr, n_fft=params.n_fft, fmin=100.0, n_bands=5)
    centroid = librosa.feature.spectral_centroid(S=stft, sr=sr)
    bandwidth = librosa.feature.spectral_bandwidth(S=stft, sr=sr)
    rolloff = librosa.feature.spectral_rolloff(S=stft, sr=sr)
    flatness = np.log(librosa.feature.spectral_flatness(S=stft) + 1e-10)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=params.n_fft, hop_length=params.hop_length)
    frames = min(stft.shape[1], zcr.shape[1])

    f0 = librosa.yin(
        y,
        fmin=params.f0_min,
        fmax=params.f0_max,
        sr=sr,
        frame_length=1024,
        hop_length=params.hop_length,
        center=True,
    )[:frames]
    # Log-pitch (semitones re 100 Hz) over active frames; its spread and slope carry arousal.
    semitones = 12.0 * np.log2(f0 / 100.0)
    voiced = semitones[active[: semitones.shape[0]]]
    if voiced.size >= 2:
        pitch_stats = np.array(
            [
                voiced.mean(),
                voiced.std(),
                *np.percentile(voiced, [10, 50, 90]),
                np.abs(np.diff(voiced)).mean(),
            ],
            dtype=np.float32,
        )
    else:
        pitch_stats = np.zeros(6, dtype=np.float32)

    frame_level = np.vstack(
        [
            mfcc[:, :frames],
            d1[:, :frames],
            d2[:, :frames],
            log_mel[:, :frames],
            contrast[:, :frames],
            np.log(centroid[:, :frames] + 1.0),
            np.log(bandwidth[:, :frames] + 1.0),
            np.log(rolloff[:, :frames] + 1.0),
            flatness[:, :frames],
            zcr[:, :frames],
            rms_db[None, :frames],
        ]
    )
    active = active[:frames]
    active_ratio = np.array([active.mean()], dtype=np.float32)
    vector = np.concatenate([_stats(frame_level[:, active]), pitch_stats, active_ratio])
    clean: FloatArray = np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    return clean


@dataclass(frozen=True)
class LogMelParams:
    """A fixed-size log-mel patch per segment, for the convolutional model."""

    sample_rate: int = 16000
    n_fft: int = 640
    hop_length: int = 320
    n_mels: int = 48
    fmin: float = 50.0
    fmax: float = 8000.0
    #: Patch width in frames (3 s at a 20 ms hop); shorter segments are centred and zero-padded.
    frames: int = 150
    target_rms: float = 0.05

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LogMelParams":
        return cls(**data)


def extract_logmel(segment: npt.NDArray[np.floating[Any]], params: LogMelParams) -> FloatArray:
    """(n_mels, frames) log-mel patch, gain-normalised, mean-normalised per band over the speech frames."""
    y = np.asarray(segment, dtype=np.float32)
    if y.shape[0] < params.n_fft:
        y = np.pad(y, (0, params.n_fft - y.shape[0]))
    rms_all = float(np.sqrt(np.mean(y**2)))
    if rms_all > 1e-8:
        y = y * (params.target_rms / rms_all)
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=params.sample_rate,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        n_mels=params.n_mels,
        fmin=params.fmin,
        fmax=params.fmax,
    )
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)[:, : params.frames]
    # Scale to roughly unit range; silence padding then sits at 0 (the patch's own mean).
    log_mel = (log_mel - log_mel.mean()) / 20.0
    patch = np.zeros((params.n_mels, params.frames), dtype=np.float32)
    offset = (params.frames - log_mel.shape[1]) // 2
    patch[:, offset : offset + log_mel.shape[1]] = log_mel
    return patch


@dataclass(frozen=True)
class WhisperMelParams:
    """Whisper's own log-mel front end (80 bands, 25 ms Hann window, 10 ms hop, 16 kHz)."""

    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 80
    #: The encoder's 30-second context; longer input is cut (windows are a few seconds anyway).
    max_frames: int = 3000

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "WhisperMelParams":
        return cls(**data)


def _whisper_filters(params: WhisperMelParams) -> npt.NDArray[np.float32]:
    filters: npt.NDArray[np.float32] = librosa.filters.mel(
        sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels
    ).astype(np.float32)
    return filters


def whisper_logmel(segment: npt.NDArray[np.floating[Any]], params: WhisperMelParams) -> FloatArray:
    """(n_mels, frames) log-mel input of the Whisper encoder, unpadded, an even number of frames.

    The same recipe as ``whisper.audio.log_mel_spectrogram`` (periodic Hann STFT with reflect
    padding, last frame dropped, log10 power floored 8 decades below the maximum, then
    ``(x + 4) / 4``), but without padding the clip to 30 s: the encoder accepts shorter input
    and runs about ten times faster on a 3 s window.
    """
    y = np.asarray(segment, dtype=np.float32)
    if y.shape[0] < 2 * params.n_fft:
        y = np.pad(y, (0, 2 * params.n_fft - y.shape[0]))
    window = np.hanning(params.n_fft + 1)[:-1].astype(np.float32)
    stft = librosa.stft(
        y, n_fft=params.n_fft, hop_length=params.hop_length, window=window, center=True, pad_mode="reflect"
    )[:, :-1]
    mel = _whisper_filters(params) @ (np.abs(stft) ** 2)
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    frames = min(log_spec.shape[1] - log_spec.shape[1] % 2, params.max_frames)
    out: FloatArray = ((log_spec[:, :frames] + 4.0) / 4.0).astype(np.float32)
    return out
