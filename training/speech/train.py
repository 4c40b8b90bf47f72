"""Train the speech emotion model (Keras 3, TF backend) on RAVDESS + TESS, split by speaker.

Protocol (no file of a validation speaker is ever trained on):

1. *Selection*: train on RAVDESS actors 01-12 + TESS OAF, early-stop on actors 13-16 (clip-level
   accuracy; the best epoch's weights are kept).
2. *Report*: by default that model is shipped and scored on actors 17-20, which no choice in this
   script looks at. With ``--retrain`` a fresh model is trained on actors 01-16 + TESS for the
   chosen number of epochs instead (used for the statistics MLP, not for the shipped CNN).

The defaults reproduce the shipped model (log-mel CNN, see services/speech/MODEL_CARD.md):

    python -m training.speech.train --data ../shared/data/speech --out services/speech/artifacts
"""

import argparse
import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.speech.audio import SegmentationParams
from services.speech.features import FeatureParams, LogMelParams
from services.speech.model import MODEL_FILE, ModelConfig, configure_threads
from shared.labels import LABELS, NUM_LABELS
from training.speech.data import Clip, FeatureSet, cached_features, ravdess_actor, read_clips

logger = logging.getLogger("training.speech.train")

MODEL_NAMES = {"stats": "speech-emotion-dnn", "cnn": "speech-emotion-cnn"}


@dataclass
class HyperParams:
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.4
    input_noise: float = 0.15
    l2: float = 1e-4
    learning_rate: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 150
    patience: int = 25
    tess_weight: float = 0.5
    members: int = 1
    conv_filters: tuple[int, ...] = (16, 32, 48, 64)


def build_model(x_train: np.ndarray, hp: HyperParams, seed: int = 0) -> Any:
    """A standardising MLP (or an averaged ensemble of ``hp.members`` of them) ending in softmax."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(x_train.shape[1],), name="features")
    norm = keras.layers.Normalization(name="standardise")
    norm.adapt(x_train)
    z = norm(inputs)
    outputs = []
    for m in range(hp.members):
        h = keras.layers.GaussianNoise(hp.input_noise, name=f"m{m}_noise")(z)
        for i, units in enumerate(hp.hidden):
            h = keras.layers.Dense(
                units, activation="relu", kernel_regularizer=keras.regularizers.l2(hp.l2), name=f"m{m}_dense{i}"
            )(h)
            h = keras.layers.Dropout(hp.dropout, name=f"m{m}_drop{i}")(h)
        outputs.append(keras.layers.Dense(NUM_LABELS, activation="softmax", name=f"m{m}_probs")(h))
    out = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="probs")(outputs)
    model = keras.Model(inputs, out, name="speech_emotion")
    model.compile(
        optimizer=keras.optimizers.Adam(hp.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def clip_probabilities(probs: np.ndarray, owners: np.ndarray, durations: np.ndarray, n_clips: int) -> np.ndarray:
    """Duration-weighted mean of segment probabilities per clip (as the service combines them)."""
    out = np.zeros((n_clips, NUM_LABELS))
    np.add.at(out, owners, probs * durations[:, None])
    sums = out.sum(axis=1, keepdims=True)
    return out / np.where(sums > 0, sums, 1)


def class_weights(y: np.ndarray) -> np.ndarray:
    """Inverse-frequency weights (balanced), so the merged neutral+calm class does not dominate."""
    counts = np.bincount(y, minlength=NUM_LABELS).astype(float)
    return np.where(counts > 0, len(y) / (NUM_LABELS * np.maximum(counts, 1)), 0.0)


def build_cnn(shape: tuple[int, int], hp: HyperParams, seed: int = 0) -> Any:
    """A small log-mel CNN: four conv blocks, global average+max pooling, softmax."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=shape, name="logmel")
    h = keras.layers.Reshape((*shape, 1))(inputs)
    for i, filters in enumerate(hp.conv_filters):
        h = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=False, kernel_regularizer=keras.regularizers.l2(hp.l2), name=f"conv{i}"
        )(h)
        h = keras.layers.BatchNormalization(name=f"bn{i}")(h)
        h = keras.layers.Activation("relu")(h)
        if i < len(hp.conv_filters) - 1:
            h = keras.layers.MaxPooling2D(2, name=f"pool{i}")(h)
    h = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(h), keras.layers.GlobalMaxPooling2D()(h)])
    h = keras.layers.Dropout(hp.dropout)(h)
    out = keras.layers.Dense(NUM_LABELS, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, out, name="speech_emotion_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(hp.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def spec_augment(
    x: np.ndarray, rng: np.random.Generator, *, max_f: int = 8, max_t: int = 20, shift: int = 30
) -> np.ndarray:
    """SpecAugment-style masking (2 frequency bands, 2 time spans) and a random circular time shift."""
    out = x.copy()
    n, mels, frames = out.shape
    for i in range(n):
        out[i] = np.roll(out[i], int(rng.integers(-shift, shift + 1)), axis=1)
        for _ in range(2):
            f = int(rng.integers(0, max_f + 1))
            f0 = int(rng.integers(0, mels - f + 1))
            out[i, f0 : f0 + f, :] = 0.0
            t = int(rng.integers(0, max_t + 1))
            t0 = int(rng.integers(0, frames - t + 1))
            out[i, :, t0 : t0 + t] = 0.0
    return out


class ClipTracker:
    """Clip-level validation accuracy after each epoch; keeps the best weights, says when to stop."""

    def __init__(self, val: FeatureSet, y_clip: np.ndarray, patience: int) -> None:
        self.val, self.y_clip, self.patience = val, y_clip, patience
        self.best = -1.0
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self.history: list[float] = []

    def update(self, epoch: int, model: Any) -> bool:
        """Record epoch ``epoch`` (1-based); False once ``patience`` epochs passed without improvement."""
        probs = predict_batched(model, self.val.x)
        clip = clip_probabilities(probs, self.val.clip, self.val.duration, len(self.y_clip))
        acc = float((clip.argmax(1) == self.y_clip).mean())
        self.history.append(acc)
        logger.info("epoch %d: clip accuracy %.4f", epoch, acc)
        if acc > self.best:
            self.best, self.best_epoch = acc, epoch
            self.best_weights = model.get_weights()
        return epoch - self.best_epoch < self.patience


def predict_batched(model: Any, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.vstack([np.asarray(model(x[i : i + batch], training=False)) for i in range(0, len(x), batch)])


def fit(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    hp: HyperParams,
    *,
    epochs: int,
    seed: int = 0,
    tracker: ClipTracker | None = None,
    max_seconds: float | None = None,
) -> Any:
    """Train a fresh model (MLP on vectors, CNN on patches) for up to ``epochs`` epochs.

    With a tracker, training stops early and the best epoch's weights are restored; ``max_seconds``
    bounds the wall-clock time (CPU is shared, the deadline is not).
    """
    started = time.monotonic()
    model = build_cnn(x.shape[1:], hp, seed=seed) if x.ndim == 3 else build_model(x, hp, seed=seed)
    rng = np.random.default_rng(seed)
    sample_weight = weights * class_weights(y)[y]
    for epoch in range(1, epochs + 1):
        inputs = spec_augment(x, rng) if x.ndim == 3 else x
        model.fit(inputs, y, sample_weight=sample_weight, epochs=1, batch_size=hp.batch_size, shuffle=True, verbose=0)
        if tracker is not None and not tracker.update(epoch, model):
            break
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            logger.info("time budget reached after epoch %d", epoch)
            break
    if tracker is not None and tracker.best_weights is not None:
        model.set_weights(tracker.best_weights)
    return model


def stack(parts: list[tuple[FeatureSet, list[Clip], float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate feature sets into (x, y, sample weight)."""
    xs, ys, ws = [], [], []
    for fs, clips, weight in parts:
        xs.append(fs.x)
        ys.append(np.array([clips[i].label for i in fs.clip], dtype=np.int64))
        ws.append(np.full(len(fs.clip), weight, dtype=np.float32))
    return np.vstack(xs), np.concatenate(ys), np.concatenate(ws)


def subset(fs: FeatureSet, clips: list[Clip], keep: set[int]) -> tuple[FeatureSet, list[Clip]]:
    """The segments of the clips whose index is in ``keep``, re-indexed."""
    order = sorted(keep)
    remap = {old: new for new, old in enumerate(order)}
    mask = np.isin(fs.clip, order)
    return (
        FeatureSet(
            x=fs.x[mask], clip=np.array([remap[c] for c in fs.clip[mask]], dtype=np.int64), duration=fs.duration[mask]
        ),
        [clips[i] for i in order],
    )


def actors(clips: list[Clip], wanted: range | list[int]) -> set[int]:
    return {i for i, c in enumerate(clips) if ravdess_actor(c) in set(wanted)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/speech", help="folder with ravdess/ and tess/")
    parser.add_argument("--out", default="services/speech/artifacts", help="where the model files go")
    parser.add_argument("--cache", default="/tmp/speech_feats", help="feature cache (.npy)")
    parser.add_argument("--augment", default="orig,speed090,speed110,noise", help="training augmentations")
    parser.add_argument("--hidden", default="256,128")
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--noise", type=float, default=0.15, help="Gaussian noise on standardised features")
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tess-weight", type=float, default=0.25, help="sample weight of TESS clips")
    parser.add_argument("--members", type=int, default=1, help="MLPs averaged inside the model")
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--select-only", action="store_true", help="stop after the selection stage")
    parser.add_argument("--kind", choices=["stats", "cnn"], default="cnn", help="MLP on statistics or log-mel CNN")
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="after selection, retrain on actors 01-16 + TESS for the chosen epochs (default: ship the selected model)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget per training stage")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    configure_threads(args.threads)

    hp = HyperParams(
        hidden=tuple(int(h) for h in args.hidden.split(",") if h),
        dropout=args.dropout,
        input_noise=args.noise,
        l2=args.l2,
        learning_rate=args.lr,
        max_epochs=args.max_epochs,
        patience=args.patience,
        tess_weight=args.tess_weight,
        members=args.members,
        batch_size=args.batch_size,
    )
    feature_params, segmentation = FeatureParams(), SegmentationParams()
    logmel = LogMelParams() if args.kind == "cnn" else None
    root = Path(args.data)
    rav = read_clips(root / "ravdess" / "manifest.csv", "ravdess")
    tess = read_clips(root / "tess" / "manifest.csv", "tess")
    augs = args.augment.split(",")

    def feats(clips: list[Clip], name: str, aug: str) -> FeatureSet:
        return cached_features(
            clips,
            name=name,
            cache_dir=Path(args.cache),
            feature_params=feature_params,
            segmentation=segmentation,
            augmentation=aug,
            seed=1,
            logmel=logmel,
        )

    rav_sets = {aug: feats(rav, "ravdess", aug) for aug in augs}
    tess_sets = {aug: feats(tess, "tess", aug) for aug in augs}

    def training_data(train_actors: range) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = actors(rav, train_actors)
        parts: list[tuple[FeatureSet, list[Clip], float]] = []
        for aug in augs:
            parts.append((*subset(rav_sets[aug], rav, keep), 1.0))
            if hp.tess_weight > 0:
                parts.append((tess_sets[aug], tess, hp.tess_weight))
        return stack(parts)

    def validation(val_actors: range) -> tuple[FeatureSet, np.ndarray]:
        fs, clips = subset(
            rav_sets["orig"] if "orig" in rav_sets else feats(rav, "ravdess", "orig"), rav, actors(rav, val_actors)
        )
        return fs, np.array([c.label for c in clips])

    # Stage 1: choose the epoch count on the inner speaker split.
    x, y, w = training_data(range(1, 13))
    inner_val, inner_y = validation(range(13, 17))
    tracker = ClipTracker(inner_val, inner_y, hp.patience)
    budget = args.max_minutes * 60 if args.max_minutes else None
    model = fit(x, y, w, hp, epochs=hp.max_epochs, seed=args.seed, tracker=tracker, max_seconds=budget)
    best_epoch = tracker.best_epoch
    logger.info("selection: best clip accuracy on actors 13-16 = %.4f at epoch %d", tracker.best, best_epoch)
    if args.select_only:
        print(json.dumps({"inner_accuracy": tracker.best, "best_epoch": best_epoch, "hp": hp.__dict__}))
        return 0

    # Stage 2: retrain on 01-16 (+TESS) for the chosen number of epochs (or keep the stage-1 model).
    final_epochs = best_epoch
    if not args.retrain:
        trained_on = "RAVDESS actors 01-12 + TESS OAF (early-stopped on actors 13-16)"
    else:
        trained_on = "RAVDESS actors 01-16 + TESS OAF"
        x, y, w = training_data(range(1, 17))
        model = fit(x, y, w, hp, epochs=final_epochs, seed=args.seed, max_seconds=budget)
    outer_val, outer_y = validation(range(17, 21))
    probs = predict_batched(model, outer_val.x)
    clip_probs = clip_probabilities(probs, outer_val.clip, outer_val.duration, len(outer_y))
    from training.report import format_report, report_from_probabilities

    report = report_from_probabilities(outer_y.tolist(), clip_probs)
    print(format_report(report, title="speech model on RAVDESS actors 17-20 (held out)"))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    config = ModelConfig(
        name=MODEL_NAMES[args.kind],
        version=dt.datetime.now(dt.UTC).strftime("%Y.%m.%d"),
        labels=LABELS,
        features=feature_params,
        segmentation=segmentation,
        logmel=logmel,
        inputs=("logmel",) if logmel is not None else ("features",),
        metrics={
            "kind": args.kind,
            "trained_on": trained_on,
            "selection": {
                "split": "train actors 01-12 + TESS, validate actors 13-16",
                "clip_accuracy": tracker.best,
                "history": tracker.history,
            },
            "epochs": final_epochs,
            "ravdess_actors_17_20": {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]},
            "hyperparameters": {k: list(v) if isinstance(v, tuple) else v for k, v in hp.__dict__.items()},
            "augmentations": augs,
        },
    )
    config.save(out)
    logger.info("wrote %s (%d bytes)", out / MODEL_FILE, (out / MODEL_FILE).stat().st_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
