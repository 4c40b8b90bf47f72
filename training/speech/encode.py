"""Cache pooled Whisper-encoder states of every speech window of the training datasets.

One ``.npz`` per clip (and augmentation) under ``--out``: ``pooled`` (windows, 8, 1024) float16,
the mean and std over time of the embeddings (0), of each of the six blocks (1-6) and of the final
normalised output (7), and ``durations`` (seconds per window); with ``--frame-stride N`` also the six
blocks' states over time (``frames``, ``frame_counts``: for attention pooling). Existing files are skipped, so an
interrupted run resumes where it stopped; ``--shard K/N`` lets N processes share the work.

    python -m training.speech.encode --data ../shared/data/speech --out /tmp/speech_feats
    python -m training.speech.encode --data ../shared/data/speech --out /tmp/speech_feats --augment mix --copies 2
"""

import argparse
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from services.speech.audio import SegmentationParams, decode, segment
from services.speech.encoder import FINAL, HIDDEN_SIZE, RUNTIMES, WhisperEncoder, frame_means, load_encoder, pool
from services.speech.errors import NoSpeech
from training.speech.data import Clip, add_noise, ravdess_actor, read_clips

logger = logging.getLogger(__name__)

DATASETS = ("ravdess", "tess", "casia")
SAMPLE_RATE = 16000


def load_clips(data: Path, datasets: Sequence[str] = DATASETS, every: int = 1) -> list[Clip]:
    """The clips of the named datasets (``<data>/<name>/manifest.csv``), every ``every``-th of each."""
    clips: list[Clip] = []
    for name in datasets:
        clips.extend(read_clips(data / name / "manifest.csv", name)[::every])
    return clips


def is_training_speaker(clip: Clip) -> bool:
    """Augment only speakers a model may train on: never RAVDESS actors 17-20 (the report split)."""
    return clip.dataset != "ravdess" or ravdess_actor(clip) <= 16


def reverb(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: exponentially decaying noise impulse response (RT60 0.2-0.7 s), 20-60 % wet."""
    rt60 = float(rng.uniform(0.2, 0.7))
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0
    ir /= np.sqrt(np.sum(ir**2))
    from scipy.signal import fftconvolve

    wet = fftconvolve(y, ir)[: y.shape[0]]
    mix = float(rng.uniform(0.2, 0.6))
    out = (1 - mix) * y + mix * wet * (np.std(y) / (np.std(wet) + 1e-9))
    return out.astype(np.float32)


def change_speed(y: np.ndarray, factor: float) -> np.ndarray:
    """Tempo and pitch together (Kaldi-style speed perturbation) by resampling."""
    import librosa

    out: np.ndarray = librosa.resample(y, orig_sr=int(SAMPLE_RATE * factor), target_sr=SAMPLE_RATE, res_type="soxr_hq")
    return out.astype(np.float32)


def augment_mix(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random chain: speed 0.9-1.1 (p 0.5), reverberation (p 0.5), noise 5-30 dB SNR (p 0.7), gain +-10 dB."""
    if rng.random() < 0.5:
        y = change_speed(y, float(rng.uniform(0.9, 1.1)))
    if rng.random() < 0.5:
        y = reverb(y, rng)
    if rng.random() < 0.7:
        y = add_noise(y, rng, snr_db=float(rng.uniform(5, 30)))
    y = y * float(10 ** (rng.uniform(-10, 10) / 20))
    peak = float(np.abs(y).max()) if y.size else 0.0
    return (y / peak * 0.99 if peak > 0.99 else y).astype(np.float32)


def clip_features(
    encoder: WhisperEncoder, y: np.ndarray, segmentation: SegmentationParams, frame_stride: int = 0
) -> dict[str, np.ndarray] | None:
    """Hidden states of every speech window of ``y`` (None when there is no speech).

    ``frame_stride`` > 0 also keeps the six blocks' states over time, as means of ``frame_stride``
    consecutive 20 ms frames: ``frames`` (all windows' frames, 6, 512) and ``frame_counts`` per window.
    """
    try:
        segments = segment(y, sample_rate=SAMPLE_RATE, params=segmentation)
    except NoSpeech:
        return None
    layers = [*range(encoder.num_layers + 1), FINAL]
    states = [encoder.layer_states_batch([s.samples], layers)[0] for s in segments]
    features = {
        "pooled": np.stack([np.stack([pool(h) for h in window]) for window in states]).astype(np.float16),
        "durations": np.asarray([s.duration for s in segments], dtype=np.float32),
    }
    if frame_stride > 0:
        blocks = [frame_means(window[1 : encoder.num_layers + 1], frame_stride) for window in states]
        features["frames"] = np.concatenate([b.transpose(1, 0, 2) for b in blocks]).astype(np.float16)
        features["frame_counts"] = np.asarray([b.shape[1] for b in blocks], dtype=np.int32)
        features["frame_stride"] = np.asarray(frame_stride)
    return features


def feature_path(out: Path, clip: Clip, data: Path, tag: str) -> Path:
    relative = Path(clip.path).relative_to((data / clip.dataset).resolve())
    return out / tag / clip.dataset / relative.with_suffix(".npz")


def run(
    *,
    data: Path,
    out: Path,
    augment: str,
    copies: int,
    seed: int,
    threads: int,
    datasets: Sequence[str],
    every: int = 1,
    shard: tuple[int, int] = (0, 1),
    runtime: str = "onnx",
    frame_stride: int = 0,
) -> None:
    """Encode every clip (or augmented copy) that has no cache file yet."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    encoder = load_encoder(runtime=runtime, threads=threads)
    segmentation = SegmentationParams()
    clips = load_clips(data, datasets, every)
    if augment != "orig":
        clips = [c for c in clips if is_training_speaker(c)]
    tags = ["orig"] if augment == "orig" else [f"{augment}{k}" for k in range(copies)]
    started, done = time.monotonic(), 0
    for k, tag in enumerate(tags):
        for i, clip in enumerate(clips):
            if i % shard[1] != shard[0]:
                continue
            target = feature_path(out, clip, data, tag)
            if target.is_file():
                continue
            y = decode(Path(clip.path).read_bytes(), sample_rate=SAMPLE_RATE, max_duration_s=600)
            if augment == "mix":
                # One generator per (clip, copy): a resumed run makes the same copies.
                y = augment_mix(y, np.random.default_rng([seed, k, i]))
            features = clip_features(encoder, y, segmentation, frame_stride)
            if features is None:
                logger.warning("no speech in %s (%s)", clip.path, tag)
                features = {
                    "pooled": np.zeros((0, encoder.num_layers + 2, 2 * HIDDEN_SIZE), np.float16),
                    "durations": np.zeros(0, np.float32),
                }
                if frame_stride > 0:
                    features["frames"] = np.zeros((0, encoder.num_layers, HIDDEN_SIZE), np.float16)
                    features["frame_counts"] = np.zeros(0, np.int32)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp.npz")
            np.savez(tmp, **features)
            os.replace(tmp, target)
            done += 1
            if done % 100 == 0:
                rate = done / (time.monotonic() - started)
                logger.info("%s: %d/%d clips (%.1f clips/s)", tag, i + 1, len(clips), rate)
    logger.info("done: %d new clips in %.0f s", done, time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/speech"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/speech_feats"))
    parser.add_argument("--augment", choices=["orig", "mix"], default="orig")
    parser.add_argument("--copies", type=int, default=1, help="augmented copies per training clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), help="dataset folders to encode, in order")
    parser.add_argument(
        "--every", type=int, default=1, help="encode every N-th clip of each manifest (a quicker cache)"
    )
    parser.add_argument("--shard", default="0/1", help="K/N: encode only clips whose index is K modulo N")
    parser.add_argument(
        "--runtime", choices=RUNTIMES, default="onnx", help="encoder runtime (the service's default; same states)"
    )
    parser.add_argument(
        "--frame-stride",
        type=int,
        default=0,
        help="also keep the blocks' states over time, averaged over this many 20 ms frames (0: pooled only)",
    )
    args = parser.parse_args(argv)
    k, n = (int(v) for v in args.shard.split("/"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run(
        data=args.data.resolve(),
        out=args.out,
        augment=args.augment,
        copies=args.copies,
        seed=args.seed,
        threads=args.threads,
        datasets=args.datasets,
        every=args.every,
        shard=(k, n),
        runtime=args.runtime,
        frame_stride=args.frame_stride,
    )


if __name__ == "__main__":
    main()
