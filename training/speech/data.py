"""Speech training data: manifests -> segments -> cached feature matrices.

Audio goes through ``services.speech.audio`` (decode + segment) and ``services.speech.features``
(extract), the very code the service runs, so training and inference cannot drift apart.
"""

import csv
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np

from services.speech.audio import SegmentationParams, decode, segment
from services.speech.errors import NoSpeech
from services.speech.features import FeatureParams, LogMelParams, extract, extract_logmel
from shared.labels import LABEL_TO_INDEX

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip:
    """One labelled audio file."""

    path: str
    label: int
    speaker: str
    dataset: str


@dataclass
class FeatureSet:
    """Segment feature vectors and, per segment, the clip it came from and its duration."""

    x: np.ndarray  # (n_segments, d) float32
    clip: np.ndarray  # (n_segments,) int: index into the clip list
    duration: np.ndarray  # (n_segments,) float32 seconds


def read_clips(manifest: Path, dataset: str) -> list[Clip]:
    """The clips of a dataset manifest (``path,emotion,speaker`` columns)."""
    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Clip(
            path=str((manifest.parent / row["path"]).resolve()),
            label=LABEL_TO_INDEX[row["emotion"]],
            speaker=row.get("speaker") or dataset,
            dataset=dataset,
        )
        for row in rows
    ]


def ravdess_actor(clip: Clip) -> int:
    """The RAVDESS actor number (1-24) of a clip."""
    return int(clip.speaker.rsplit("_", 1)[-1])


#: An augmentation: (waveform, rng) -> waveform, all at the feature sample rate.
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def speed(factor: float) -> Augment:
    """Speed perturbation (tempo and pitch together, like Kaldi's 0.9/1.1) plus light noise."""

    def apply(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = librosa.resample(y, orig_sr=int(16000 * factor), target_sr=16000, res_type="soxr_hq")
        return add_noise(out, rng, snr_db=float(rng.uniform(15, 30)))

    return apply


def add_noise(y: np.ndarray, rng: np.random.Generator, *, snr_db: float) -> np.ndarray:
    """White noise at ``snr_db`` relative to the clip's active-frame power."""
    power = float(np.mean(y[np.abs(y) > 0.1 * np.abs(y).max()] ** 2)) if np.any(y) else 0.0
    noise = rng.standard_normal(y.shape[0]).astype(np.float32) * np.sqrt(power / 10 ** (snr_db / 10))
    return (y + noise).astype(np.float32)


def noise_only(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return add_noise(y, rng, snr_db=float(rng.uniform(10, 25)))


AUGMENTATIONS: dict[str, Augment | None] = {
    "orig": None,
    "speed090": speed(0.9),
    "speed110": speed(1.1),
    "noise": noise_only,
}


def featurise(
    clips: Sequence[Clip],
    *,
    feature_params: FeatureParams,
    segmentation: SegmentationParams,
    augment: Augment | None = None,
    seed: int = 0,
    logmel: LogMelParams | None = None,
) -> FeatureSet:
    """Decode, (augment), segment and extract every clip; clips with no speech are skipped.

    Statistics vectors by default; log-mel patches (for the CNN) when ``logmel`` is given.
    """
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    owners: list[int] = []
    durations: list[float] = []
    for i, clip in enumerate(clips):
        y = decode(Path(clip.path).read_bytes(), sample_rate=feature_params.sample_rate, max_duration_s=600)
        if augment is not None:
            y = augment(y, rng)
        try:
            segments = segment(y, sample_rate=feature_params.sample_rate, params=segmentation)
        except NoSpeech:
            logger.warning("no speech in %s", clip.path)
            continue
        for seg in segments:
            rows.append(extract(seg.samples, feature_params) if logmel is None else extract_logmel(seg.samples, logmel))
            owners.append(i)
            durations.append(seg.duration)
        if (i + 1) % 200 == 0:
            logger.info("featurised %d/%d", i + 1, len(clips))
    return FeatureSet(
        x=np.stack(rows).astype(np.float32),
        clip=np.asarray(owners, dtype=np.int64),
        duration=np.asarray(durations, dtype=np.float32),
    )


def cached_features(
    clips: Sequence[Clip],
    *,
    name: str,
    cache_dir: Path,
    feature_params: FeatureParams,
    segmentation: SegmentationParams,
    augmentation: str = "orig",
    seed: int = 0,
    logmel: LogMelParams | None = None,
) -> FeatureSet:
    """:func:`featurise`, memoised as .npy files keyed by the clips and every parameter."""
    key_data = {
        "clips": [c.path for c in clips],
        "features": feature_params.to_json(),
        "segmentation": asdict(segmentation),
        "augmentation": augmentation,
        "seed": seed,
    }
    if logmel is not None:
        key_data["logmel"] = logmel.to_json()
    key_src = json.dumps(key_data, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    stem = cache_dir / f"{name}{'_logmel' if logmel else ''}_{augmentation}_{key}"
    files = [stem.with_suffix(f".{part}.npy") for part in ("x", "clip", "duration")]
    if all(f.is_file() for f in files):
        return FeatureSet(*(np.load(f) for f in files))
    cache_dir.mkdir(parents=True, exist_ok=True)
    logger.info("extracting %s/%s (%d clips)", name, augmentation, len(clips))
    result = featurise(
        clips,
        feature_params=feature_params,
        segmentation=segmentation,
        augment=AUGMENTATIONS[augmentation],
        seed=seed,
        logmel=logmel,
    )
    for f, arr in zip(files, (result.x, result.clip, result.duration), strict=True):
        np.save(f, arr)
    return result
