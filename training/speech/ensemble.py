"""Average several trained speech models into one Keras model, and compare them on actors 13-16.

Members are model folders written by ``train`` without ``--retrain`` (trained on RAVDESS 01-12 +
TESS), so actors 13-16 stay unseen for the choice and 17-20 for the report. Members that read the
same input (``features`` or ``logmel``) share it in the combined model.

    python -m training.speech.ensemble --models /tmp/speech_mlp_nr services/speech/artifacts \
        --out /tmp/speech_ens
"""

import argparse
import datetime as dt
import logging
import os
from pathlib import Path

import numpy as np

from services.speech.features import FeatureParams
from services.speech.model import MODEL_FILE, ModelConfig, SpeechModel, configure_threads, load
from shared.labels import LABELS
from training.report import format_report, report_from_probabilities
from training.speech.data import FeatureSet, cached_features, read_clips
from training.speech.train import actors, clip_probabilities, predict_batched, subset

logger = logging.getLogger("training.speech.ensemble")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="model folders to average")
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default="../shared/data/speech")
    parser.add_argument("--cache", default="/tmp/speech_feats")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    configure_threads(1)
    import keras

    members: list[SpeechModel] = [load(Path(m)) for m in args.models]
    for m in members:
        assert len(m.config.inputs) == 1, "members must be single-input models"
        assert m.config.segmentation == members[0].config.segmentation
    by_input = {m.config.inputs[0]: m for m in members}
    rav = read_clips(Path(args.data) / "ravdess" / "manifest.csv", "ravdess")
    common = {"name": "ravdess", "cache_dir": Path(args.cache), "segmentation": members[0].config.segmentation}
    data: dict[str, FeatureSet] = {}
    if "features" in by_input:
        data["features"] = cached_features(rav, feature_params=by_input["features"].config.features, seed=1, **common)  # type: ignore[arg-type]
    if "logmel" in by_input:
        logmel = by_input["logmel"].config.logmel
        assert all(m.config.logmel == logmel for m in members if m.config.inputs == ("logmel",))
        data["logmel"] = cached_features(rav, feature_params=FeatureParams(), logmel=logmel, seed=1, **common)  # type: ignore[arg-type]
    sets = list(data.values())
    assert all(np.array_equal(s.clip, sets[0].clip) for s in sets), "segmentations differ"

    def evaluate(val_actors: range) -> tuple[list[np.ndarray], np.ndarray]:
        keep = actors(rav, val_actors)
        parts = {k: subset(v, rav, keep) for k, v in data.items()}
        ref, clips = next(iter(parts.values()))
        y = np.array([c.label for c in clips])
        probs = [
            clip_probabilities(
                predict_batched(m.network, parts[m.config.inputs[0]][0].x), ref.clip, ref.duration, len(y)
            )
            for m in members
        ]
        return probs, y

    (inner, y_inner), (outer, y_outer) = evaluate(range(13, 17)), evaluate(range(17, 21))
    rows = [(f"{Path(p).name}", i, o) for p, i, o in zip(args.models, inner, outer, strict=True)]
    rows.append(("ensemble", np.mean(inner, axis=0), np.mean(outer, axis=0)))
    for name, i, o in rows:
        a = report_from_probabilities(y_inner.tolist(), i)
        b = report_from_probabilities(y_outer.tolist(), o)
        print(
            f"{name:<20} actors 13-16 acc={a['accuracy']:.4f} f1={a['macro_f1']:.4f}   "
            f"actors 17-20 acc={b['accuracy']:.4f} f1={b['macro_f1']:.4f}"
        )
    final = report_from_probabilities(y_outer.tolist(), np.mean(outer, axis=0))
    print(format_report(final, title="ensemble on RAVDESS actors 17-20 (held out)"))

    inputs = {name: keras.Input(shape=fs.x.shape[1:], name=name) for name, fs in data.items()}
    # Re-wrap each member under a unique name: two CNNs trained by the same script share one.
    wrapped = [
        keras.Model(m.network.inputs[0], m.network.outputs[0], name=f"member{i}_{m.config.inputs[0]}")
        for i, m in enumerate(members)
    ]
    outputs = [w(inputs[m.config.inputs[0]]) for w, m in zip(wrapped, members, strict=True)]
    combined = keras.Model(inputs, keras.layers.Average(name="probs")(outputs), name="speech_emotion_ensemble")
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    combined.save(folder / MODEL_FILE)
    ModelConfig(
        name="speech-emotion-ensemble",
        version=dt.datetime.now(dt.UTC).strftime("%Y.%m.%d"),
        labels=LABELS,
        features=members[0].config.features,
        segmentation=members[0].config.segmentation,
        logmel=by_input["logmel"].config.logmel if "logmel" in by_input else None,
        inputs=tuple(data),
        metrics={
            "kind": "mean of " + ", ".join(m.name for m in members),
            "trained_on": "RAVDESS actors 01-12 + TESS OAF (each early-stopped on actors 13-16)",
            "members": [m.config.metrics for m in members],
            "ravdess_actors_17_20": {"accuracy": final["accuracy"], "macro_f1": final["macro_f1"]},
        },
    ).save(folder)
    # Round trip through the service loader: same probabilities from the cached inputs.
    reloaded = load(folder)
    sample = {k: v.x[:8] for k, v in data.items()}
    expected = np.mean([predict_batched(m.network, sample[m.config.inputs[0]]) for m in members], axis=0)
    assert np.allclose(reloaded.predict_features(sample), expected, atol=1e-5)
    logger.info("wrote %s (%d bytes)", folder / MODEL_FILE, (folder / MODEL_FILE).stat().st_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
