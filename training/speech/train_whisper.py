"""Train the Keras head over pooled Whisper-base encoder states, split by speaker.

Needs the cache written by ``training.speech.encode`` (hidden states of every speech window).

Protocol (no window of an evaluation speaker is ever trained on):

* ``select``: train on RAVDESS actors 01-12 + TESS + CASIA (+ augmented copies), pick the epoch with
  the best clip-level macro-F1 on actors 13-16; writes ``selection.json``.
* ``final``: train on actors 01-16 + TESS + CASIA for the selected number of epochs, report on
  actors 17-20 (looked at by nothing else), export the artefacts the service loads.
* ``loso``: leave one TESS/CASIA speaker out (train on everything else but actors 17-20) and report
  on that speaker.

    python -m training.speech.train_whisper select --feats /tmp/speech_feats --out /tmp/speech_head
    python -m training.speech.train_whisper final --feats /tmp/speech_feats --out /tmp/speech_head \\
        --export services/speech/artifacts
    python -m training.speech.train_whisper loso --feats /tmp/speech_feats --out /tmp/speech_head
"""

import argparse
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.speech.audio import SegmentationParams
from services.speech.features import FeatureParams
from services.speech.model import MODEL_FILE, EncoderConfig, ModelConfig, configure_threads
from shared.labels import LABELS, NUM_LABELS
from training.report import classification_report
from training.speech.data import Clip, ravdess_actor, read_clips

logger = logging.getLogger("training.speech.train_whisper")

MODEL_NAME = "speech-emotion-whisper"
DATASETS = ("ravdess", "tess", "casia")


# --------------------------------------------------------------------------------------------- data
@dataclass
class Windows:
    """Pooled encoder states of speech windows, with the clip each came from."""

    x: np.ndarray  # (n, 1024) float32: mean and std over time of the last hidden layer
    clip: np.ndarray  # (n,) index into ``clips``
    duration: np.ndarray  # (n,) seconds
    copy: np.ndarray  # (n,) 0 for the original audio, k + 1 for augmented copy k
    clips: list[Clip] = field(default_factory=list)


def pooled_windows(npz: Path) -> tuple[np.ndarray, np.ndarray]:
    """(windows, 1024) mean+std pooled states and (windows,) durations of one cached clip."""
    with np.load(npz) as data:
        hidden = data["hidden"].astype(np.float32)
        lengths = data["lengths"]
        durations = data["durations"]
    rows = []
    for chunk in np.split(hidden, np.cumsum(lengths)[:-1]) if len(lengths) else []:
        rows.append(np.concatenate([chunk.mean(axis=0), chunk.std(axis=0)]))
    x = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 1024), np.float32)
    return x, durations.astype(np.float32)


def load_windows(
    data: Path, feats: Path, *, augment_tags: Sequence[str] = (), datasets: Sequence[str] = DATASETS
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
            x, d = pooled_windows(npz)
            xs.append(x)
            owners.extend([i] * len(x))
            durations.append(d)
            copies.extend([k] * len(x))
    if missing:
        logger.info("clips without cached features (skipped), per cache: %s", missing)
    if not xs:
        raise FileNotFoundError(f"no cached features under {feats}: run training.speech.encode")
    return Windows(
        x=np.concatenate(xs),
        clip=np.asarray(owners, dtype=np.int64),
        duration=np.concatenate(durations),
        copy=np.asarray(copies, dtype=np.int64),
        clips=clips,
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
    seed: int = 0


def build_head(x_train: np.ndarray, hp: HeadParams) -> Any:
    """Standardise -> noise/dropout -> Dense(hidden, ReLU) -> dropout -> softmax over the 7 labels."""
    import keras

    keras.utils.set_random_seed(hp.seed)
    inputs = keras.Input(shape=(x_train.shape[1],), name="whisper")
    norm = keras.layers.Normalization(name="standardise")
    norm.adapt(x_train)
    h = norm(inputs)
    h = keras.layers.GaussianNoise(hp.input_noise, name="noise")(h)
    h = keras.layers.Dropout(hp.input_dropout, name="input_dropout")(h)
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
    """Fit a fresh head for ``hp.epochs`` epochs; resumable from ``checkpoint_dir`` (BackupAndRestore)."""
    import keras

    x = w.x[train_rows]
    y = np.array([w.clips[i].label for i in w.clip[train_rows]])
    model = build_head(x, hp)
    callbacks: list[Any] = []
    if checkpoint_dir is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(checkpoint_dir), delete_checkpoint=False))
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, _logs: on_epoch(epoch + 1, model)))
    model.fit(
        x,
        keras.utils.to_categorical(y, NUM_LABELS),
        sample_weight=sample_weights(w, train_rows, hp),
        batch_size=hp.batch_size,
        epochs=hp.epochs,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    return model


# ------------------------------------------------------------------------------------- evaluation
def evaluate(model: Any, w: Windows, rows: np.ndarray) -> dict[str, Any]:
    """Clip-level report (accuracy, macro-F1, per-class, confusion) of ``model`` on the windows ``rows``."""
    probs = np.asarray(model.predict(w.x[rows], batch_size=1024, verbose=0), dtype=np.float64)
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
def export(model: Any, folder: Path, *, metrics: dict[str, Any], version: str | None = None) -> None:
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
        encoder=EncoderConfig(),
    ).save(folder)


# --------------------------------------------------------------------------------------- ensemble
def ensemble(head: Any, legacy_dir: Path, weight: float) -> tuple[Any, ModelConfig]:
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
        encoder=EncoderConfig(),
    )
    return combined, config


# ------------------------------------------------------------------------------------------ modes
TRAIN_SPEAKERS = {"select": (1, 12), "final": (1, 16)}


def not_report_split(c: Clip) -> bool:
    return c.dataset != "ravdess" or ravdess_actor(c) <= 16


def run_select(w: Windows, hp: HeadParams, out: Path, augmented: bool) -> dict[str, Any]:
    """Train on actors 01-12 (+ TESS, CASIA) and score every epoch on actors 13-16."""
    train_rows = select_rows(w, lambda c: c.dataset != "ravdess" or ravdess_actor(c) <= 12, augmented=augmented)
    val_rows = select_rows(w, ravdess_actors(13, 16), augmented=False)
    history: list[dict[str, float]] = []

    def score(epoch: int, model: Any) -> None:
        if epoch % 5 and epoch != hp.epochs:
            return
        report = evaluate(model, w, val_rows)
        history.append({"epoch": epoch, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]})
        logger.info("epoch %d actors 13-16: %s", epoch, summary(report))

    train_loop(w, train_rows, hp, on_epoch=score)
    best = max(history, key=lambda h: (h["macro_f1"], -h["epoch"]))
    result = {"params": asdict(hp), "augmented": augmented, "history": history, "best": best}
    out.mkdir(parents=True, exist_ok=True)
    (out / "selection.json").write_text(json.dumps(result, indent=2) + "\n")
    logger.info("best epoch %d: actors 13-16 acc=%.4f macro_f1=%.4f", best["epoch"], best["accuracy"], best["macro_f1"])
    return result


def run_final(w: Windows, hp: HeadParams, out: Path, augmented: bool, export_to: Path | None) -> dict[str, Any]:
    """Train on actors 01-16 (+ TESS, CASIA) and report on actors 17-20; export if asked."""
    train_rows = select_rows(w, not_report_split, augmented=augmented)
    model = train_loop(w, train_rows, hp, checkpoint_dir=out / "final_backup")
    report = evaluate(model, w, select_rows(w, ravdess_actors(17, 20), augmented=False))
    logger.info("actors 17-20: %s", summary(report))
    out.mkdir(parents=True, exist_ok=True)
    (out / "final_report.json").write_text(json.dumps(report, indent=2) + "\n")
    model.save(out / MODEL_FILE)
    if export_to is not None:
        metrics = {
            "ravdess_actors_17_20": {k: report[k] for k in ("n", "accuracy", "macro_f1", "min_recall")},
            "trained_on": "RAVDESS actors 01-16 + TESS OAF + CASIA (4 speakers)"
            + (" + augmented copies" if augmented else ""),
            "epochs": hp.epochs,
        }
        export(model, export_to, metrics=metrics)
    return report


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
        run_final(w, hp, args.out, augmented, None)
        head = keras.saving.load_model(args.out / MODEL_FILE, compile=False)
    combined, config = ensemble(head, args.legacy, args.weight)
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
        "head_trained_on": "RAVDESS actors 01-16 + TESS OAF + CASIA (4 speakers)",
        "head_epochs": hp.epochs,
    }
    (args.out / "ensemble_report.json").write_text(json.dumps(report, indent=2) + "\n")
    config = ModelConfig.from_json({**config.to_json(), "metrics": metrics})
    config.save(folder)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["select", "final", "loso", "ensemble"])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/speech"))
    parser.add_argument("--feats", type=Path, default=Path("/tmp/speech_feats"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/speech_head"))
    parser.add_argument("--export", type=Path, help="write the service artefacts here (final, ensemble modes)")
    parser.add_argument("--legacy", type=Path, help="log-mel model folder to blend with (ensemble mode)")
    parser.add_argument("--weight", type=float, default=0.5, help="the Whisper head's share in the blend")
    parser.add_argument("--augment-tags", nargs="*", default=["mix0"], help="cached augmented copies to train on")
    parser.add_argument("--epochs", type=int, help="default: selection.json's best epoch (final), else 60")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("TRAIN_THREADS", "1")))
    for name, value in asdict(HeadParams()).items():
        if name != "epochs":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    configure_threads(args.threads)

    hp = HeadParams(**{k: getattr(args, k) for k in asdict(HeadParams()) if k != "epochs"})
    if args.epochs is not None:
        hp.epochs = args.epochs
    elif args.mode in ("final", "loso") and (args.out / "selection.json").is_file():
        hp.epochs = int(json.loads((args.out / "selection.json").read_text())["best"]["epoch"])
    started = time.monotonic()
    tags = [t for t in args.augment_tags if (args.feats / t).is_dir()]
    w = load_windows(args.data.resolve(), args.feats, augment_tags=tags)
    augmented = bool(tags)
    logger.info("%d windows of %d clips (augmented copies: %s); %s", len(w.x), len(w.clips), tags or "none", hp)
    if args.mode == "select":
        run_select(w, hp, args.out, augmented)
    elif args.mode == "final":
        run_final(w, hp, args.out, augmented, args.export)
    elif args.mode == "loso":
        run_loso(w, hp, args.out, augmented)
    else:
        run_ensemble(w, hp, args, augmented)
    logger.info("done in %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
