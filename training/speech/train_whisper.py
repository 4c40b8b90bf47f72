"""Train the Keras head over pooled Whisper-base encoder states, split by speaker.

Needs the cache written by ``training.speech.encode`` (pooled states of every layer of every window).
The default recipe: mean+std of blocks 1-6 concatenated (6,144 numbers per window), RAVDESS + TESS
+ CASIA (RAVDESS alone scored a point higher on actors 13-16 but 0.23-0.25 on the other corpora),
two augmented copies of the RAVDESS training actors, five heads averaged.

Protocol (no window of an evaluation speaker is ever trained on):

* ``select``: train on RAVDESS actors 01-12 (+ augmented copies) + TESS + CASIA, pick the epoch with the best
  clip-level macro-F1 of the averaged heads on actors 13-16; writes ``selection.json``.
* ``cv``: the same choice on all of actors 01-16 out of fold (four speaker folds, 960 clips): slower, half the noise.
* ``final``: train on actors 01-16 + TESS + CASIA for the selected number of epochs, report on actors 17-20
  (looked at by nothing else), export the artefacts the service loads.
* ``calibrate``: out-of-fold probabilities of actors 01-16 (four speaker folds) fit the calibrator;
  checked on actors 17-20 with the final heads; ``--export`` writes ``calibration.json``. The
  out-of-fold clip probabilities are kept (``out_of_fold_clips.npz``) for fusion's training triples.
* ``loso``: leave one TESS/CASIA speaker out (train on everything else but actors 17-20) and report
  on that speaker.

    python -m training.speech.train_whisper select --feats /tmp/speech_feats --out /tmp/speech_head
    python -m training.speech.train_whisper final --feats /tmp/speech_feats --out /tmp/speech_head \\
        --export services/speech/artifacts
    python -m training.speech.train_whisper calibrate --feats /tmp/speech_feats --out /tmp/speech_head \\
        --export services/speech/artifacts
    python -m training.speech.train_whisper loso --feats /tmp/speech_feats --out /tmp/speech_loso --seeds 1
"""

import argparse
import datetime as dt
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from services.speech.audio import SegmentationParams
from services.speech.encoder import FINAL, combine_layers, pad_frames
from services.speech.features import FeatureParams
from services.speech.model import MODEL_FILE, EncoderConfig, ModelConfig, configure_threads
from shared.labels import LABELS, NUM_LABELS
from training.report import classification_report
from training.speech.data import Clip, ravdess_actor, read_clips

logger = logging.getLogger("training.speech.train_whisper")

MODEL_NAME = "speech-emotion-whisper"
#: Position of the final normalised output in the cache's layer axis (training.speech.encode).
CACHED_FINAL = 7
DATASETS = ("ravdess", "tess", "casia")


# --------------------------------------------------------------------------------------------- data
@dataclass
class Windows:
    """Pooled encoder states of speech windows, with the clip each came from."""

    #: (n, d) float32: mean and std over time of the chosen layers, combined; or, for attention
    #: pooling, (n, frames, d) float16: the layers' states over time, zero-padded.
    x: np.ndarray
    clip: np.ndarray  # (n,) index into ``clips``
    duration: np.ndarray  # (n,) seconds
    copy: np.ndarray  # (n,) 0 for the original audio, k + 1 for augmented copy k
    clips: list[Clip] = field(default_factory=list)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)


def pooled_windows(npz: Path, encoder: EncoderConfig) -> tuple[np.ndarray, np.ndarray]:
    """(windows, d) pooled states of ``encoder.layers``, combined as the service does, and (windows,) durations."""
    with np.load(npz) as data:
        pooled = data["pooled"].astype(np.float32)
        durations = data["durations"]
    # The cache holds the embeddings, the six blocks and the final output (index 7 = FINAL).
    index = [CACHED_FINAL if layer == FINAL else layer for layer in encoder.layers]
    if not len(pooled):
        width = 1024 if encoder.combine == "mean" else 1024 * len(index)
        return np.zeros((0, width), np.float32), durations.astype(np.float32)
    return np.stack([combine_layers(p[index], encoder.combine) for p in pooled]), durations.astype(np.float32)


def frame_windows(npz: Path, encoder: EncoderConfig) -> tuple[list[np.ndarray], np.ndarray]:
    """Each window's states over time, (frames, len(layers) * 512) float16, and (windows,) durations."""
    with np.load(npz) as data:
        if "frames" not in data:
            raise FileNotFoundError(f"{npz} has no frame states: run training.speech.encode --frame-stride 4")
        frames, counts, durations = data["frames"], data["frame_counts"], data["durations"]
        stride = int(data["frame_stride"])
    if stride != encoder.frame_stride:
        raise ValueError(f"{npz} holds frames of stride {stride}, the recipe wants {encoder.frame_stride}")
    index = [layer - 1 for layer in encoder.layers]  # the cache keeps blocks 1-6
    if min(index, default=0) < 0:
        raise ValueError("attention pooling reads encoder blocks 1-6 only")
    windows = np.split(frames[:, index], np.cumsum(counts)[:-1]) if len(counts) else []
    return [w.reshape(len(w), -1) for w in windows], durations.astype(np.float32)


def load_windows(
    data: Path,
    feats: Path,
    *,
    augment_tags: Sequence[str] = (),
    datasets: Sequence[str] = DATASETS,
    encoder: EncoderConfig = EncoderConfig(),
) -> Windows:
    """Every cached window of the datasets' clips: the original audio and the given augmented copies."""
    clips: list[Clip] = []
    for name in datasets:
        clips.extend(read_clips(data / name / "manifest.csv", name))
    xs, owners, durations, copies = [], [], [], []
    missing: dict[str, int] = {}
    for k, tag in enumerate(("orig", *augment_tags)):
        for i, clip in enumerate(clips):
            relative = Path(clip.path).relative_to((data / clip.dataset).resolve()).with_suffix(".npz")
            npz = feats / tag / clip.dataset / relative
            if not npz.is_file():
                # Augmented copies exist only for training speakers; a quick cache (encode --every N)
                # holds only part of a dataset's clips.
                missing[tag] = missing.get(tag, 0) + 1
                continue
            if encoder.pooling == "attention":
                frames, d = frame_windows(npz, encoder)
                xs.extend(frames)
                x = frames
            else:
                x, d = pooled_windows(npz, encoder)
                xs.append(x)
            owners.extend([i] * len(x))
            durations.append(d)
            copies.extend([k] * len(x))
    if missing:
        logger.info("clips without cached features (skipped), per cache: %s", missing)
    if not xs:
        raise FileNotFoundError(f"no cached features under {feats}: run training.speech.encode")
    return Windows(
        x=pad_frames(xs) if encoder.pooling == "attention" else np.concatenate(xs),
        clip=np.asarray(owners, dtype=np.int64),
        duration=np.concatenate(durations),
        copy=np.asarray(copies, dtype=np.int64),
        clips=clips,
        encoder=encoder,
    )


def ravdess_actors(lo: int, hi: int) -> Callable[[Clip], bool]:
    return lambda c: c.dataset == "ravdess" and lo <= ravdess_actor(c) <= hi


def select_rows(w: Windows, keep: Callable[[Clip], bool], *, augmented: bool) -> np.ndarray:
    """Row indices of the windows whose clip passes ``keep`` (augmented copies only if asked)."""
    wanted = np.array([keep(c) for c in w.clips])
    rows = wanted[w.clip]
    if not augmented:
        rows &= w.copy == 0
    return np.flatnonzero(rows)


def clip_probabilities(probs: np.ndarray, owners: np.ndarray, durations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Duration-weighted mean of window probabilities per clip (as the service combines them)."""
    clip_ids, inverse = np.unique(owners, return_inverse=True)
    out = np.zeros((len(clip_ids), probs.shape[1]))
    np.add.at(out, inverse, probs * durations[:, None])
    out /= out.sum(axis=1, keepdims=True)
    return clip_ids, out


def class_weights(y: np.ndarray) -> np.ndarray:
    """Inverse-frequency weights (mean 1 over the present classes; 0 for absent ones)."""
    counts = np.bincount(y, minlength=NUM_LABELS).astype(np.float64)
    present = counts > 0
    weights = np.zeros(NUM_LABELS)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


# -------------------------------------------------------------------------------------------- model
@dataclass
class HeadParams:
    hidden: int = 256
    dropout: float = 0.5
    input_dropout: float = 0.2
    input_noise: float = 0.1
    l2: float = 1e-4
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 60
    label_smoothing: float = 0.1
    #: Loss weight of TESS and CASIA windows relative to RAVDESS (before class balancing).
    other_weight: float = 0.5
    #: Loss weight of augmented copies relative to the original audio.
    augmented_weight: float = 0.7
    #: Width of the attention scorer (attention pooling only).
    attention_hidden: int = 64
    #: From this epoch on, the head's weights are averaged over the ends of epochs (0: off; the head has no
    #: BatchNorm, so the average needs no recomputed statistics).
    average_from: int = 0
    #: Mixup's Beta(alpha, alpha) (0: off): each batch trains on convex mixtures of pairs of its windows,
    #: features, targets and loss weights alike (Zhang et al. 2018).
    mixup: float = 0.0
    seed: int = 0


def build_head(x_train: np.ndarray, hp: HeadParams) -> Any:
    """Standardise -> noise/dropout -> Dense(hidden, ReLU) -> dropout -> softmax over the 7 labels."""
    import keras

    keras.utils.set_random_seed(hp.seed)
    if x_train.ndim == 3:
        # Any number of frames: the service sends each batch padded to its own longest window.
        return build_attention_head(keras.Input(shape=(None, x_train.shape[2]), name="whisper"), x_train, hp)
    inputs = keras.Input(shape=x_train.shape[1:], name="whisper")
    norm = keras.layers.Normalization(name="standardise")
    norm.adapt(x_train)
    h = norm(inputs)
    h = keras.layers.GaussianNoise(hp.input_noise, name="noise")(h)
    h = keras.layers.Dropout(hp.input_dropout, name="input_dropout")(h)
    return finish_head(inputs, h, hp)


def frame_statistics(x: np.ndarray, sample: int = 200_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance per feature over (a sample of) the real frames of padded windows."""
    rng = np.random.default_rng(seed)
    windows = x[np.sort(rng.choice(len(x), size=min(len(x), sample // x.shape[1] + 1), replace=False))]
    picked = windows[np.any(windows != 0, axis=-1)].astype(np.float64)
    return picked.mean(axis=0), picked.var(axis=0) + 1e-6


def build_attention_head(inputs: Any, x_train: np.ndarray, hp: HeadParams) -> Any:
    """Frames -> standardise -> attentive mean+std per encoder block -> noise/dropout -> the same MLP."""
    import keras

    from services.speech.layers import AttentiveStatsPooling, FrameMask

    mean, variance = frame_statistics(x_train)
    mask = FrameMask(name="frame_mask")(inputs)
    h = keras.layers.Normalization(mean=mean, variance=variance, name="standardise")(inputs)
    groups = x_train.shape[-1] // 512
    h = AttentiveStatsPooling(groups, hp.attention_hidden, name="pooling")(h, mask)
    # Noise and dropout on the pooled vector, as in the pooled recipe (per frame they cost 4x the time).
    h = keras.layers.GaussianNoise(hp.input_noise, name="noise")(h)
    h = keras.layers.Dropout(hp.input_dropout, name="input_dropout")(h)
    return finish_head(inputs, h, hp)


def finish_head(inputs: Any, h: Any, hp: HeadParams) -> Any:
    import keras

    h = keras.layers.Dense(hp.hidden, activation="relu", kernel_regularizer=keras.regularizers.l2(hp.l2), name="dense")(
        h
    )
    h = keras.layers.Dropout(hp.dropout, name="dropout")(h)
    out = keras.layers.Dense(NUM_LABELS, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, out, name="speech_emotion_whisper")
    model.compile(
        optimizer=keras.optimizers.Adam(hp.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=hp.label_smoothing),
    )
    return model


def sample_weights(w: Windows, rows: np.ndarray, hp: HeadParams) -> np.ndarray:
    """Class-balanced (per clip label), dataset- and augmentation-weighted loss weights, mean 1."""
    y = np.array([w.clips[i].label for i in w.clip[rows]])
    weights = class_weights(y)[y]
    other = np.array([w.clips[i].dataset != "ravdess" for i in w.clip[rows]])
    weights = weights * np.where(other, hp.other_weight, 1.0) * np.where(w.copy[rows] > 0, hp.augmented_weight, 1.0)
    return (weights / weights.mean()).astype(np.float32)


# --------------------------------------------------------------------------------------------- loop
def train_loop(
    w: Windows,
    train_rows: np.ndarray,
    hp: HeadParams,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[int, Any], None] | None = None,
) -> Any:
    """Fit a fresh head for ``hp.epochs`` epochs; resumable from ``checkpoint_dir`` (BackupAndRestore).

    With ``hp.average_from``, the returned head holds the mean of its weights at the ends of epochs
    ``average_from`` .. ``epochs``, and ``on_epoch`` sees that running mean from ``average_from`` on.
    """
    import keras

    x = w.x[train_rows]
    y = np.array([w.clips[i].label for i in w.clip[train_rows]])
    model = build_head(x, hp)
    callbacks: list[Any] = []
    if checkpoint_dir is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(checkpoint_dir), delete_checkpoint=False))
    average = WeightAverage(hp.average_from, checkpoint_dir) if hp.average_from > 0 else None
    if average is not None:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, _: average.update(epoch + 1, model)))
    if on_epoch is not None:

        def report(epoch: int, _logs: Any) -> None:
            if average is None or average.mean is None:
                on_epoch(epoch + 1, model)
                return
            current = model.get_weights()
            model.set_weights(average.mean)
            on_epoch(epoch + 1, model)
            model.set_weights(current)

        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=report))
    targets = keras.utils.to_categorical(y, NUM_LABELS)
    weights = sample_weights(w, train_rows, hp)
    if hp.mixup > 0:
        batches = mixup_batches(x, targets.astype(np.float32), weights, hp)
        model.fit(batches, epochs=hp.epochs, verbose=0, callbacks=callbacks)
    else:
        model.fit(
            x,
            targets,
            sample_weight=weights,
            batch_size=hp.batch_size,
            epochs=hp.epochs,
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
        )
    if average is not None and average.mean is not None:
        model.set_weights(average.mean)
    return model


def mixup_batch(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row mixed with a random partner of the same batch: lam * own + (1 - lam) * partner, lam ~ Beta."""
    lam = rng.beta(alpha, alpha, size=(len(x), 1)).astype(np.float32)
    partner = rng.permutation(len(x))
    return (
        lam * x + (1 - lam) * x[partner],
        lam * y + (1 - lam) * y[partner],
        lam[:, 0] * weights + (1 - lam[:, 0]) * weights[partner],
    )


def mixup_batches(x: np.ndarray, y: np.ndarray, weights: np.ndarray, hp: HeadParams) -> Any:
    """A keras dataset of shuffled batches of mixed windows (a new order and new mixtures every epoch)."""
    import keras

    class MixupBatches(keras.utils.PyDataset):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(hp.seed)
            self.order = self.rng.permutation(len(x))

        def __len__(self) -> int:
            return math.ceil(len(x) / hp.batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            rows = self.order[index * hp.batch_size : (index + 1) * hp.batch_size]
            return mixup_batch(x[rows], y[rows], weights[rows], hp.mixup, self.rng)

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(x))

    return MixupBatches()


class WeightAverage:
    """Running mean of the model's weights at the ends of epochs ``start`` and later (1-based).

    With a ``folder`` (the head's BackupAndRestore folder) the mean is saved after every epoch and
    read back on a resumed run, so a resumed head averages the same epochs as an uninterrupted one.
    """

    def __init__(self, start: int, folder: Path | None = None) -> None:
        self.start = start
        self.file = folder / "weight_average.npz" if folder is not None else None
        self.mean: list[np.ndarray] | None = None
        self.epochs: list[int] = []
        if self.file is not None and self.file.is_file():
            with np.load(self.file) as data:
                self.epochs = data["epochs"].tolist()
                self.mean = [data[f"w{i}"] for i in range(int(data["n"]))]

    def update(self, done: int, model: Any) -> None:
        """Fold in ``model``'s weights after epoch ``done`` (1-based), once per epoch."""
        if done < self.start or done in self.epochs:
            return
        weights = [np.asarray(v) for v in model.get_weights()]
        self.epochs.append(done)
        k = len(self.epochs)
        self.mean = weights if self.mean is None else [m + (v - m) / k for m, v in zip(self.mean, weights, strict=True)]
        if self.file is not None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            arrays = {f"w{i}": m for i, m in enumerate(self.mean)}
            np.savez(self.file, epochs=np.array(self.epochs), n=np.array(len(self.mean)), **arrays)


# ------------------------------------------------------------------------------------- evaluation
def evaluate(model: Any, w: Windows, rows: np.ndarray) -> dict[str, Any]:
    """Clip-level report (accuracy, macro-F1, per-class, confusion) of ``model`` on the windows ``rows``."""
    return evaluate_probabilities(window_probabilities(model, w, rows), w, rows)


def window_probabilities(model: Any, w: Windows, rows: np.ndarray) -> np.ndarray:
    batch = 1024 if w.x.ndim == 2 else 128
    return np.asarray(model.predict(w.x[rows], batch_size=batch, verbose=0), dtype=np.float64)


def evaluate_probabilities(probs: np.ndarray, w: Windows, rows: np.ndarray) -> dict[str, Any]:
    """Clip-level report from the window probabilities of ``rows`` (duration-weighted, as the service does)."""
    clip_ids, clip_probs = clip_probabilities(probs, w.clip[rows], w.duration[rows])
    y_true = np.array([w.clips[i].label for i in clip_ids])
    present = sorted(set(y_true.tolist()))
    report = classification_report(y_true.tolist(), clip_probs.argmax(axis=1).tolist())
    recalls = [report["per_class"][LABELS[k]]["recall"] for k in present]
    report["min_recall"] = float(min(recalls))
    return report


def summary(report: dict[str, Any]) -> str:
    return (
        f"n={report['n']} acc={report['accuracy']:.4f} macro_f1={report['macro_f1']:.4f} "
        f"min_recall={report['min_recall']:.4f}"
    )


# ----------------------------------------------------------------------------------------- export
def export(
    model: Any, folder: Path, *, metrics: dict[str, Any], encoder: EncoderConfig, version: str | None = None
) -> None:
    """Write the head and its JSON so ``services.speech.model.load`` serves it."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    ModelConfig(
        name=MODEL_NAME,
        version=version or dt.date.today().isoformat().replace("-", "."),
        labels=LABELS,
        features=FeatureParams(),
        segmentation=SegmentationParams(),
        metrics=metrics,
        inputs=("whisper",),
        encoder=encoder,
    ).save(folder)


# --------------------------------------------------------------------------------------- ensemble
def ensemble(head: Any, legacy_dir: Path, weight: float, encoder: EncoderConfig) -> tuple[Any, ModelConfig]:
    """One Keras model: ``weight`` x the Whisper head + (1 - weight) x the log-mel model in ``legacy_dir``."""
    import keras

    from services.speech.model import load

    legacy = load(legacy_dir)
    inputs = {"whisper": keras.Input(shape=(head.inputs[0].shape[1],), name="whisper")}
    for tensor in legacy.network.inputs:
        inputs[tensor.name] = keras.Input(shape=tuple(tensor.shape[1:]), name=tensor.name)
    head_out = keras.Model(head.inputs[0], head.outputs[0], name="whisper_head")(inputs["whisper"])
    legacy_out = legacy.network({t.name: inputs[t.name] for t in legacy.network.inputs})
    blended = keras.layers.Add(name="probs")(
        [keras.layers.Rescaling(weight)(head_out), keras.layers.Rescaling(1.0 - weight)(legacy_out)]
    )
    combined = keras.Model(inputs, blended, name="speech_emotion_whisper_ensemble")
    config = ModelConfig(
        name="speech-emotion-whisper-ensemble",
        version=dt.date.today().isoformat().replace("-", "."),
        labels=LABELS,
        features=legacy.config.features,
        segmentation=legacy.config.segmentation,
        metrics={},
        logmel=legacy.config.logmel,
        inputs=tuple(inputs),
        encoder=encoder,
    )
    return combined, config


# ------------------------------------------------------------------------------------------ modes
TRAIN_SPEAKERS = {"select": (1, 12), "final": (1, 16)}


def not_report_split(c: Clip) -> bool:
    return c.dataset != "ravdess" or ravdess_actor(c) <= 16


def speaker_folds(folds: int) -> list[tuple[int, int]]:
    """Actors 01-16 as ``folds`` consecutive (first, last) actor ranges: the out-of-fold groups of cv and calibrate."""
    return [(int(group[0]), int(group[-1])) for group in np.array_split(np.arange(1, 17), folds)]


def fold_train_rows(w: Windows, held_out: Callable[[Clip], bool], augmented: bool) -> np.ndarray:
    """Training rows for a fold: every clip but the report split and the held-out fold's."""
    return select_rows(w, lambda c: not_report_split(c) and not held_out(c), augmented=augmented)


def epoch_history(
    w: Windows, scored: dict[int, tuple[np.ndarray, np.ndarray]], what: str, seeds: int
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Per epoch, the clip-level report of (window probabilities, their rows); and the best epoch by macro-F1."""
    history: list[dict[str, float]] = []
    for epoch, (probs, rows) in sorted(scored.items()):
        report = evaluate_probabilities(probs, w, rows)
        history.append({"epoch": epoch, **{k: report[k] for k in ("accuracy", "macro_f1", "min_recall")}})
        logger.info("epoch %d %s (%d heads): %s", epoch, what, seeds, summary(report))
    return history, max(history, key=lambda h: (h["macro_f1"], -h["epoch"]))


def run_select(w: Windows, hp: HeadParams, out: Path, augmented: bool, seeds: int = 1) -> dict[str, Any]:
    """Train ``seeds`` heads on actors 01-12 (+ the other datasets); score their average every 5 epochs on 13-16."""
    train_rows = select_rows(w, lambda c: c.dataset != "ravdess" or ravdess_actor(c) <= 12, augmented=augmented)
    val_rows = select_rows(w, ravdess_actors(13, 16), augmented=False)
    per_epoch: dict[int, list[np.ndarray]] = {}

    def collect(epoch: int, model: Any) -> None:
        if epoch % 5 == 0 or epoch == hp.epochs:
            per_epoch.setdefault(epoch, []).append(window_probabilities(model, w, val_rows))

    for seed in range(seeds):
        train_loop(w, train_rows, replace(hp, seed=hp.seed + seed), on_epoch=collect)
    scored = {epoch: (np.mean(probs, axis=0), val_rows) for epoch, probs in per_epoch.items()}
    history, best = epoch_history(w, scored, "actors 13-16", seeds)
    result = {"params": asdict(hp), "seeds": seeds, "augmented": augmented, "history": history, "best": best}
    out.mkdir(parents=True, exist_ok=True)
    (out / "selection.json").write_text(json.dumps(result, indent=2) + "\n")
    logger.info("best epoch %d: actors 13-16 acc=%.4f macro_f1=%.4f", best["epoch"], best["accuracy"], best["macro_f1"])
    return result


def run_cv(w: Windows, hp: HeadParams, out: Path, augmented: bool, *, seeds: int = 1, folds: int = 4) -> dict[str, Any]:
    """Like ``select``, on four times the clips: actors 01-16 in ``folds`` speaker folds, each scored every 5
    epochs by ``seeds`` heads trained on the other folds (+ the other datasets); per epoch, the folds' clips
    are pooled into one report (960 clips: half the noise of one 240-clip fold). Resumable per fold.
    """
    out.mkdir(parents=True, exist_ok=True)
    per_epoch: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for k, held in enumerate(speaker_folds(folds)):
        cached = out / f"cv_fold_{k}.npz"
        in_fold = ravdess_actors(*held)
        rows = select_rows(w, in_fold, augmented=False)
        if not cached.is_file():
            fold: dict[int, list[np.ndarray]] = {}

            def collect(
                epoch: int, model: Any, fold: dict[int, list[np.ndarray]] = fold, rows: np.ndarray = rows
            ) -> None:
                if epoch % 5 == 0 or epoch == hp.epochs:
                    fold.setdefault(epoch, []).append(window_probabilities(model, w, rows))

            train_rows = fold_train_rows(w, in_fold, augmented)
            for seed in range(seeds):
                train_loop(w, train_rows, replace(hp, seed=hp.seed + seed), on_epoch=collect)
            epochs = sorted(fold)
            np.savez(
                cached,
                epochs=np.array(epochs),
                probs=np.stack([np.mean(fold[e], axis=0) for e in epochs]),
                seeds=np.array(seeds),
            )
            logger.info("cv fold %d (actors %02d-%02d) done", k, *held)
        with np.load(cached) as data:
            for epoch, probs in zip(data["epochs"].tolist(), data["probs"], strict=True):
                per_epoch.setdefault(epoch, []).append((rows, probs))
    scored = {
        epoch: (np.concatenate([p for _, p in parts]), np.concatenate([r for r, _ in parts]))
        for epoch, parts in per_epoch.items()
    }
    history, best = epoch_history(w, scored, "actors 01-16 out of fold", seeds)
    result = {"params": asdict(hp), "seeds": seeds, "augmented": augmented, "history": history, "best": best}
    (out / "cv.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def inference_head(head: Any) -> Any:
    """A trained head (see :func:`build_head`) as served: standardise -> dense (float16 storage) -> probs.

    Noise and dropout are identities at inference and are left out; the wide first layer keeps its
    weights in half precision (``services.speech.layers.HalfStoredDense``), halving the file.
    """
    import keras

    from services.speech.layers import HalfStoredDense

    inputs = keras.Input(shape=tuple(head.inputs[0].shape[1:]), name="whisper")
    h = head.get_layer("standardise")(inputs)
    if len(head.inputs[0].shape) == 3:
        h = head.get_layer("pooling")(h, head.get_layer("frame_mask")(inputs))
    h = HalfStoredDense.from_dense(head.get_layer("dense"))(h)
    out = head.get_layer("probs")(h)
    return keras.Model(inputs, out, name=head.name)


def average_heads(heads: Sequence[Any]) -> Any:
    """One Keras model whose output is the mean of the heads' probabilities (a seed ensemble)."""
    import keras

    if len(heads) == 1:
        return heads[0]
    inputs = keras.Input(shape=tuple(heads[0].inputs[0].shape[1:]), name="whisper")
    outputs = [keras.Model(h.inputs[0], h.outputs[0], name=f"head_{k}")(inputs) for k, h in enumerate(heads)]
    return keras.Model(inputs, keras.layers.Average(name="probs")(outputs), name="speech_emotion_whisper_heads")


def run_final(
    w: Windows,
    hp: HeadParams,
    out: Path,
    augmented: bool,
    export_to: Path | None,
    *,
    seeds: int = 1,
    version: str | None = None,
) -> dict[str, Any]:
    """Train ``seeds`` heads on actors 01-16 (+ the other datasets), average them, report on 17-20; export if asked.

    Each finished head is saved (``head_<k>.keras``) and an interrupted one resumes from its backup.
    """
    import keras

    train_rows = select_rows(w, not_report_split, augmented=augmented)
    heads = []
    for seed in range(seeds):
        saved = out / f"head_{seed}.keras"
        if saved.is_file():
            heads.append(keras.saving.load_model(saved, compile=False))
            continue
        head = train_loop(w, train_rows, replace(hp, seed=hp.seed + seed), checkpoint_dir=out / f"final_backup_{seed}")
        out.mkdir(parents=True, exist_ok=True)
        head.save(saved)
        heads.append(head)
    model = average_heads([inference_head(h) for h in heads])
    report = evaluate(model, w, select_rows(w, ravdess_actors(17, 20), augmented=False))
    logger.info("actors 17-20: %s", summary(report))
    out.mkdir(parents=True, exist_ok=True)
    (out / "final_report.json").write_text(json.dumps(report, indent=2) + "\n")
    model.save(out / MODEL_FILE)
    if export_to is not None:
        metrics = {
            "ravdess_actors_17_20": {k: report[k] for k in ("n", "accuracy", "macro_f1", "min_recall")},
            "trained_on": trained_on(w) + (" + augmented copies" if augmented else ""),
            "heads": seeds,
            "epochs": hp.epochs,
        }
        export(model, export_to, metrics=metrics, encoder=w.encoder, version=version)
    return report


def run_calibrate(
    w: Windows, hp: HeadParams, out: Path, augmented: bool, export_to: Path | None, *, seeds: int = 1, folds: int = 4
) -> dict[str, Any]:
    """Fit the calibrator on held-out speakers, check it on others; write ``calibration.json`` if asked.

    Actors 01-16 are split into ``folds`` speaker groups; each group's clips are predicted by
    ``seeds`` heads trained (same recipe and epochs as the final model) on the other groups. Those
    out-of-fold clip probabilities (960 clips) fit temperature or vector scaling; the final model's
    (``out/head_*.keras``) probabilities on actors 17-20, which neither the model nor the calibrator
    saw, give the before/after figures. Folds that ``cv`` ran in ``out`` with as many seeds are reused
    at this epoch instead of being trained again.
    """
    import keras

    from training.calibration import calibration_metrics, fit_calibrator, save_reliability_png

    probabilities, fold_clips = [], []
    for k, held in enumerate(speaker_folds(folds)):
        cached = out / f"calibration_fold_{k}.npz"
        in_fold = ravdess_actors(*held)
        rows = select_rows(w, in_fold, augmented=False)
        # ``cv`` may already have trained these folds' heads (same folds, seeds and recipe) and kept this epoch.
        from_cv = None if cached.is_file() else cv_fold_probabilities(out / f"cv_fold_{k}.npz", hp.epochs, seeds)
        if from_cv is not None:
            clip_ids, clip_probs = clip_probabilities(from_cv, w.clip[rows], w.duration[rows])
            np.savez(cached, clip_ids=clip_ids, probs=clip_probs)
            logger.info("fold %d (actors %02d-%02d held out): taken from cv", k, *held)
        if not cached.is_file():
            train_rows = fold_train_rows(w, in_fold, augmented)
            heads = [train_loop(w, train_rows, replace(hp, seed=hp.seed + s)) for s in range(seeds)]
            probs = np.mean([window_probabilities(h, w, rows) for h in heads], axis=0)
            clip_ids, clip_probs = clip_probabilities(probs, w.clip[rows], w.duration[rows])
            out.mkdir(parents=True, exist_ok=True)
            np.savez(cached, clip_ids=clip_ids, probs=clip_probs)
            logger.info("fold %d (actors %02d-%02d held out) done", k, *held)
        with np.load(cached) as data:
            fold_clips.extend(w.clips[int(i)] for i in data["clip_ids"])
            probabilities.append(data["probs"])
    y_fit, p_fit = np.asarray([c.label for c in fold_clips]), np.concatenate(probabilities)
    calibrator, info = fit_calibrator(y_fit, p_fit, fitted_on=f"{len(y_fit)} out-of-fold clips of RAVDESS actors 01-16")
    save_out_of_fold(out / OUT_OF_FOLD_FILE, fold_clips, p_fit)
    heads = [keras.saving.load_model(p, compile=False) for p in sorted(out.glob("head_*.keras"))]
    final = average_heads([inference_head(h) for h in heads])
    rows = select_rows(w, ravdess_actors(17, 20), augmented=False)
    clip_ids, p_test = clip_probabilities(window_probabilities(final, w, rows), w.clip[rows], w.duration[rows])
    y_test = np.array([w.clips[i].label for i in clip_ids])
    calibrated = calibrator(p_test)
    result = {
        "fitted_on": {
            "clips": len(y_fit),
            "chosen": info["chosen"],
            "cv_nll": info["cv_nll"],
            "before": info["before"],
        },
        "calibrator": calibrator.to_json(),
        "actors_17_20": {
            "before": {**calibration_metrics(y_test, p_test), "accuracy": float(np.mean(p_test.argmax(1) == y_test))},
            "after": {
                **calibration_metrics(y_test, calibrated),
                "accuracy": float(np.mean(calibrated.argmax(1) == y_test)),
            },
        },
    }
    logger.info("calibration on actors 17-20: %s", json.dumps(result["actors_17_20"]))
    (out / "calibration_report.json").write_text(json.dumps(result, indent=2) + "\n")
    if export_to is not None:
        from shared.calibration import CALIBRATION_FILE

        calibrator.save(export_to / CALIBRATION_FILE)
        save_reliability_png(
            y_test,
            {"before": p_test, "after": calibrated},
            str(out / "reliability_actors_17_20.png"),
            "speech, RAVDESS actors 17-20\n(calibrator fitted on actors 01-16 out of fold)",
        )
    return result


def cv_fold_probabilities(path: Path, epoch: int, seeds: int) -> np.ndarray | None:
    """The window probabilities ``cv`` kept for ``epoch`` in one fold's file (None: no such file, epoch or seeds)."""
    if not path.is_file():
        return None
    with np.load(path) as data:
        epochs = data["epochs"].tolist()
        if "seeds" not in data or int(data["seeds"]) != seeds or epoch not in epochs:
            return None
        return np.asarray(data["probs"][epochs.index(epoch)])


#: Out-of-fold clip probabilities of actors 01-16 written by ``calibrate`` (fusion stage 1 can use them).
OUT_OF_FOLD_FILE = "out_of_fold_clips.npz"


def save_out_of_fold(path: Path, clips: Sequence[Clip], probs: np.ndarray) -> Path:
    """The out-of-fold (uncalibrated) clip probabilities with their files, labels and actors.

    ``paths`` are the absolute files (``Clip.path``); fusion stage 1 maps them to its item ids.
    """
    np.savez(
        path,
        paths=np.array([c.path for c in clips]),
        labels=np.array([c.label for c in clips], dtype=np.int64),
        actors=np.array([ravdess_actor(c) for c in clips], dtype=np.int64),
        probs=np.asarray(probs, dtype=np.float64),
    )
    return path


def run_loso(w: Windows, hp: HeadParams, out: Path, augmented: bool) -> dict[str, Any]:
    """Leave each TESS / CASIA speaker out in turn: train on the rest (never actors 17-20), test on it."""
    speakers = sorted({c.speaker for c in w.clips if c.dataset in ("tess", "casia")})
    results: dict[str, Any] = {}
    for speaker in speakers:
        train_rows = select_rows(w, lambda c, s=speaker: not_report_split(c) and c.speaker != s, augmented=augmented)
        model = train_loop(w, train_rows, hp)
        report = evaluate(model, w, select_rows(w, lambda c, s=speaker: c.speaker == s, augmented=False))
        logger.info("left out %s: %s", speaker, summary(report))
        results[speaker] = report
    out.mkdir(parents=True, exist_ok=True)
    (out / "loso.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def run_ensemble(w: Windows, hp: HeadParams, args: argparse.Namespace, augmented: bool) -> dict[str, Any]:
    """The final head (reused from ``--out``) blended with ``--legacy``, scored on actors 17-20 via the service."""
    import keras

    from services.speech.model import load
    from services.speech.pipeline import analyse
    from training.report import report_from_probabilities

    if (args.out / MODEL_FILE).is_file():
        head = keras.saving.load_model(args.out / MODEL_FILE, compile=False)
    else:
        run_final(w, hp, args.out, augmented, None, seeds=args.seeds)
        head = keras.saving.load_model(args.out / MODEL_FILE, compile=False)
    combined, config = ensemble(head, args.legacy, args.weight, w.encoder)
    folder: Path = args.export
    folder.mkdir(parents=True, exist_ok=True)
    combined.save(folder / MODEL_FILE)
    config.save(folder)
    served = load(folder)
    test = [c for c in w.clips if ravdess_actors(17, 20)(c)]
    probs = np.vstack(
        [analyse([Path(c.path).read_bytes()], model=served, max_duration_s=600)[0].probabilities for c in test]
    )
    report = report_from_probabilities([c.label for c in test], probs)
    recalls = [v["recall"] for v in report["per_class"].values() if v["support"]]
    report["min_recall"] = float(min(recalls))
    logger.info("ensemble (head weight %.2f) on actors 17-20 via the service path: %s", args.weight, summary(report))
    metrics = {
        "ravdess_actors_17_20": {k: report[k] for k in ("n", "accuracy", "macro_f1", "min_recall")},
        "kind": f"{args.weight:g} x Whisper-base head + {1 - args.weight:g} x the log-mel models in {args.legacy.name}",
        "head_trained_on": trained_on(w),
        "head_epochs": hp.epochs,
    }
    (args.out / "ensemble_report.json").write_text(json.dumps(report, indent=2) + "\n")
    config = ModelConfig.from_json({**config.to_json(), "metrics": metrics})
    config.save(folder)
    return report


def trained_on(w: Windows) -> str:
    names = {"ravdess": "RAVDESS actors 01-16", "tess": "TESS OAF", "casia": "CASIA (4 speakers)"}
    return " + ".join(names.get(d, d) for d in dict.fromkeys(c.dataset for c in w.clips))


def encoder_config(args: argparse.Namespace) -> EncoderConfig:
    if args.pooling == "attention":
        return EncoderConfig(layers=tuple(args.layers), combine="concat", pooling="attention", frame_stride=4)
    return EncoderConfig(layers=tuple(args.layers), combine=args.combine)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["select", "cv", "final", "calibrate", "loso", "ensemble"])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/speech"))
    parser.add_argument("--feats", type=Path, default=Path("/tmp/speech_feats"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/speech_head"))
    parser.add_argument("--export", type=Path, help="write the service artefacts here (final, ensemble modes)")
    parser.add_argument("--version", help="the exported model's version (default: today's date, YYYY.MM.DD)")
    parser.add_argument("--legacy", type=Path, help="log-mel model folder to blend with (ensemble mode)")
    parser.add_argument("--weight", type=float, default=0.5, help="the Whisper head's share in the blend")
    parser.add_argument(
        "--augment-tags", nargs="*", default=["mix0", "mix1"], help="cached augmented copies to train on"
    )
    parser.add_argument("--epochs", type=int, help="default: cv.json's or selection.json's best epoch (final), else 60")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("TRAIN_THREADS", "1")))
    parser.add_argument(
        "--layers",
        type=int,
        nargs="+",
        default=[1, 2, 3, 4, 5, 6],
        help="encoder layers pooled (0-6; -1 = final output)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="heads trained with different seeds and averaged")
    parser.add_argument(
        "--datasets", nargs="+", default=list(DATASETS), help="training datasets (RAVDESS is the report set)"
    )
    parser.add_argument("--combine", choices=["mean", "concat"], default="concat", help="how the layers are combined")
    parser.add_argument(
        "--pooling",
        choices=["mean_std", "attention"],
        default="mean_std",
        help="pooled states from the cache, or attention over the cached frames (encode --frame-stride 4)",
    )
    for name, value in asdict(HeadParams()).items():
        if name != "epochs":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    configure_threads(args.threads)

    hp = HeadParams(**{k: getattr(args, k) for k in asdict(HeadParams()) if k != "epochs"})
    if args.epochs is not None:
        hp.epochs = args.epochs
    elif args.mode in ("final", "calibrate", "loso"):
        # The best epoch of a cv run in the same folder, else of a select run.
        chosen = [args.out / name for name in ("cv.json", "selection.json") if (args.out / name).is_file()]
        if chosen:
            hp.epochs = int(json.loads(chosen[0].read_text())["best"]["epoch"])
    started = time.monotonic()
    tags = [t for t in args.augment_tags if (args.feats / t).is_dir()]
    w = load_windows(
        args.data.resolve(), args.feats, augment_tags=tags, datasets=args.datasets, encoder=encoder_config(args)
    )
    augmented = bool(tags)
    logger.info("%d windows of %d clips (augmented copies: %s); %s", len(w.x), len(w.clips), tags or "none", hp)
    if args.mode == "select":
        run_select(w, hp, args.out, augmented, args.seeds)
    elif args.mode == "cv":
        run_cv(w, hp, args.out, augmented, seeds=args.seeds)
    elif args.mode == "final":
        run_final(w, hp, args.out, augmented, args.export, seeds=args.seeds, version=args.version)
    elif args.mode == "calibrate":
        run_calibrate(w, hp, args.out, augmented, args.export, seeds=args.seeds)
    elif args.mode == "loso":
        run_loso(w, hp, args.out, augmented)
    else:
        run_ensemble(w, hp, args, augmented)
    logger.info("done in %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
