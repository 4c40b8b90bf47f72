"""Average a statistics-MLP and a log-mel CNN into one two-input Keras model, if that helps on actors 13-16.

Both models must come from ``train`` without ``--retrain`` (trained on RAVDESS 01-12 + TESS), so actors
13-16 stay unseen for the choice and 17-20 for the report.

    python -m training.speech.ensemble --stats /tmp/speech_mlp_nr --cnn /tmp/speech_cnn1 \
        --out services/speech/artifacts
"""

import argparse
import datetime as dt
import logging
import os
from pathlib import Path

import numpy as np

from services.speech.features import FeatureParams
from services.speech.model import MODEL_FILE, ModelConfig, configure_threads, load
from shared.labels import LABELS
from training.report import format_report, report_from_probabilities
from training.speech.data import cached_features, read_clips
from training.speech.train import actors, clip_probabilities, predict_batched, subset

logger = logging.getLogger("training.speech.ensemble")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stats", required=True, help="model folder of the statistics MLP")
    parser.add_argument("--cnn", required=True, help="model folder of the log-mel CNN")
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default="../shared/data/speech")
    parser.add_argument("--cache", default="/tmp/speech_feats")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    configure_threads(1)
    import keras

    stats, cnn = load(Path(args.stats)), load(Path(args.cnn))
    assert stats.config.inputs == ("features",) and cnn.config.inputs == ("logmel",)
    assert stats.config.segmentation == cnn.config.segmentation
    rav = read_clips(Path(args.data) / "ravdess" / "manifest.csv", "ravdess")
    common = {"name": "ravdess", "cache_dir": Path(args.cache), "segmentation": cnn.config.segmentation, "seed": 1}
    vec = cached_features(rav, feature_params=stats.config.features, **common)  # type: ignore[arg-type]
    mel = cached_features(rav, feature_params=FeatureParams(), logmel=cnn.config.logmel, **common)  # type: ignore[arg-type]
    assert np.array_equal(vec.clip, mel.clip), "segmentations differ"

    def evaluate(val_actors: range) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        keep = actors(rav, val_actors)
        v, clips = subset(vec, rav, keep)
        m, _ = subset(mel, rav, keep)
        y = np.array([c.label for c in clips])
        out = {}
        for name, probs in (
            ("stats", predict_batched(stats.network, v.x)),
            ("cnn", predict_batched(cnn.network, m.x)),
        ):
            out[name] = (clip_probabilities(probs, v.clip, v.duration, len(y)), y)
        out["ensemble"] = ((out["stats"][0] + out["cnn"][0]) / 2, y)
        return out

    inner, outer = evaluate(range(13, 17)), evaluate(range(17, 21))
    for name in ("stats", "cnn", "ensemble"):
        a = report_from_probabilities(inner[name][1].tolist(), inner[name][0])
        b = report_from_probabilities(outer[name][1].tolist(), outer[name][0])
        print(
            f"{name:<9} actors 13-16 acc={a['accuracy']:.4f} f1={a['macro_f1']:.4f}   "
            f"actors 17-20 acc={b['accuracy']:.4f} f1={b['macro_f1']:.4f}"
        )
    final = report_from_probabilities(outer["ensemble"][1].tolist(), outer["ensemble"][0])
    print(format_report(final, title="ensemble on RAVDESS actors 17-20 (held out)"))

    in_f = keras.Input(shape=vec.x.shape[1:], name="features")
    in_m = keras.Input(shape=mel.x.shape[1:], name="logmel")
    out = keras.layers.Average(name="probs")([stats.network(in_f), cnn.network(in_m)])
    combined = keras.Model({"features": in_f, "logmel": in_m}, out, name="speech_emotion_ensemble")
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    combined.save(folder / MODEL_FILE)
    ModelConfig(
        name="speech-emotion-mlp-cnn",
        version=dt.datetime.now(dt.UTC).strftime("%Y.%m.%d"),
        labels=LABELS,
        features=stats.config.features,
        segmentation=cnn.config.segmentation,
        logmel=cnn.config.logmel,
        inputs=("features", "logmel"),
        metrics={
            "kind": "mean of a statistics MLP and a log-mel CNN",
            "trained_on": "RAVDESS actors 01-12 + TESS OAF (each early-stopped on actors 13-16)",
            "members": {"stats": stats.config.metrics, "cnn": cnn.config.metrics},
            "ravdess_actors_17_20": {"accuracy": final["accuracy"], "macro_f1": final["macro_f1"]},
        },
    ).save(folder)
    # Round trip through the service loader: same probabilities from raw features.
    reloaded = load(folder)
    check = reloaded.predict_features({"features": vec.x[:8], "logmel": mel.x[:8]})
    expected = (predict_batched(stats.network, vec.x[:8]) + predict_batched(cnn.network, mel.x[:8])) / 2
    assert np.allclose(check, expected, atol=1e-5)
    logger.info("wrote %s (%d bytes)", folder / MODEL_FILE, (folder / MODEL_FILE).stat().st_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
