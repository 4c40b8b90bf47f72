"""Train the light text model: word embeddings -> Bi-LSTM -> softmax, in Keras 3 on the torch backend.

    python -m training.text.train_bilstm --data ../shared/data/text [--out DIR]

Writes ``model.keras``, ``vocab.json`` and ``config.json`` (loaded by ``services.text.model.load``),
then prints the per-dataset val report computed through that loader.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from services.text.model import CONFIG_FILE, KERAS_FILE, VOCAB_FILE, encode_words, import_keras, word_tokens
from shared.labels import LABELS, NUM_LABELS
from training.text.data import class_weights, load_split, report_shipped_model

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "services" / "text" / "artifacts" / "bilstm"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.text.train_bilstm", description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data/text")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--vocab-size", type=int, default=20000)
    p.add_argument("--min-count", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=48, help="words kept (head)")
    p.add_argument("--embedding-dim", type=int, default=96)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--class-weight-power", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--limit-per-dataset", type=int, default=None)
    p.add_argument("--name", default="bilstm-emotion")
    p.add_argument("--version", default=time.strftime("%Y.%m.%d"))
    p.add_argument("--figure", default=None)
    p.add_argument("--metrics", default=None)
    return p.parse_args(argv)


def build_vocab(texts: list[str], size: int, min_count: int) -> dict[str, int]:
    """Most frequent words -> ids from 2 (0 = padding, 1 = unknown)."""
    counts = Counter(w for t in texts for w in word_tokens(t))
    common = [w for w, c in counts.most_common(size - 2) if c >= min_count]
    return {w: i + 2 for i, w in enumerate(common)}


def build_model(args: argparse.Namespace, vocab_size: int) -> object:
    keras = import_keras()
    inputs = keras.Input(shape=(args.max_tokens,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocab_size, args.embedding_dim, mask_zero=True, name="embedding")(inputs)
    x = keras.layers.SpatialDropout1D(args.dropout / 2)(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(args.units), name="bilstm")(x)
    x = keras.layers.Dropout(args.dropout)(x)
    outputs = keras.layers.Dense(NUM_LABELS, activation="softmax", name="emotion")(x)
    model = keras.Model(inputs, outputs, name="bilstm_emotion")
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import torch

    torch.set_num_threads(args.threads)
    keras = import_keras()
    keras.utils.set_random_seed(args.seed)

    train = load_split(args.data, "train", limit_per_dataset=args.limit_per_dataset)
    val = load_split(args.data, "val", limit_per_dataset=args.limit_per_dataset)
    vocab = build_vocab([e.text for e in train], args.vocab_size, args.min_count)
    print(f"train={len(train)} val={len(val)} vocab={len(vocab) + 2} backend={keras.backend.backend()}", flush=True)

    x_train = encode_words([e.text for e in train], vocab, args.max_tokens)
    y_train = np.array([e.label for e in train])
    x_val = encode_words([e.text for e in val], vocab, args.max_tokens)
    y_val = np.array([e.label for e in val])
    weights = class_weights(y_train.tolist(), power=args.class_weight_power)
    model = build_model(args, len(vocab) + 2)
    model.fit(  # type: ignore[attr-defined]
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=args.epochs,
        batch_size=args.batch_size,
        class_weight={i: float(w) for i, w in enumerate(weights) if w > 0},
        verbose=2,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / KERAS_FILE)  # type: ignore[attr-defined]
    # Re-save without the optimizer state (Adam moments would triple the file for nothing at inference).
    keras.saving.load_model(out / KERAS_FILE, compile=False).save(out / KERAS_FILE)
    (out / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    config = {
        "kind": "bilstm",
        "name": args.name,
        "version": args.version,
        "labels": list(LABELS),
        "max_tokens": args.max_tokens,
        "tokenizer": "lower-cased \\w+ words (with 'contractions) and single symbols; head truncation",
        "training": {k: v for k, v in vars(args).items() if k not in {"out", "figure", "metrics", "data"}},
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"exported {out}: " + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in sorted(out.iterdir())))

    # The report comes from the exported files, loaded exactly as the service loads them.
    report_shipped_model(out, val, metrics=args.metrics, figure=args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
