"""Which Whisper-encoder layer carries emotion: a linear probe per layer over the encoder cache.

Logistic regression (C 0.05, balanced classes) on one layer's pooled states (mean+std) of RAVDESS
actors 01-12, clip-level accuracy / macro-F1 on actors 13-16; then the mean and the concatenation
of blocks 2-4. Reads the cache of ``training.speech.encode``; prints a Markdown table.

    python -m training.speech.probe_layers --feats /tmp/speech_feats
"""

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from services.speech.model import EncoderConfig
from training.speech import train_whisper as tw
from training.speech.data import ravdess_actor

NAMES = ["embeddings (conv + positions)", *(f"block {i}" for i in range(1, 7)), "final output"]


def probe(w: tw.Windows, x: np.ndarray) -> tuple[float, float]:
    """Fit on actors 01-12's windows, score clips of actors 13-16 (duration-weighted, as served)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train = tw.select_rows(w, lambda c: ravdess_actor(c) <= 12, augmented=False)
    test = tw.select_rows(w, tw.ravdess_actors(13, 16), augmented=False)
    labels = np.array([w.clips[i].label for i in w.clip])
    scaler = StandardScaler().fit(x[train])
    model = LogisticRegression(C=0.05, max_iter=3000, class_weight="balanced")
    model.fit(scaler.transform(x[train]), labels[train])
    report = tw.evaluate_probabilities(model.predict_proba(scaler.transform(x[test])), w, test)
    return float(report["accuracy"]), float(report["macro_f1"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/speech"))
    parser.add_argument("--feats", type=Path, default=Path("/tmp/speech_feats"))
    args = parser.parse_args(argv)
    data = args.data.resolve()
    every = tw.load_windows(
        data, args.feats, datasets=["ravdess"], encoder=EncoderConfig(layers=(*range(7), -1), combine="concat")
    )
    per_layer = every.x.reshape(len(every.x), 8, -1)
    print("| pooled states of | acc | macro-F1 |\n| --- | --- | --- |")
    for k, name in enumerate(NAMES):
        acc, f1 = probe(every, per_layer[:, k])
        print(f"| {name} | {acc:.4f} | {f1:.4f} |", flush=True)
    for name, x in (
        ("mean of blocks 2-4", per_layer[:, 2:5].mean(axis=1)),
        ("blocks 2-4 concatenated", per_layer[:, 2:5].reshape(len(per_layer), -1)),
    ):
        acc, f1 = probe(every, x)
        print(f"| {name} | {acc:.4f} | {f1:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
