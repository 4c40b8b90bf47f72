"""The fusion card's worked examples: what the shipped forest answers for a few inputs, by correlation guard.

    python -m training.fusion.examples [--model services/fusion/artifacts] [--guards 0 0.2 0.5 1]

Each input vector puts ``p`` on its top label and spreads ``1 - p`` evenly over the other six; the
table shows the fused probability of the first input's top label (happy) for every guard value.
"""

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from services.fusion.model import FusionModel, load
from shared.labels import LABEL_TO_INDEX, NUM_LABELS

#: (description, {modality: (top label, its probability)}).
EXAMPLES: tuple[tuple[str, dict[str, tuple[str, float]]], ...] = (
    ("text alone, happy 0.60", {"text": ("happy", 0.60)}),
    (
        "three agreeing, uncertain (happy 0.45 / 0.41 / 0.45)",
        {"speech": ("happy", 0.45), "text": ("happy", 0.41), "image": ("happy", 0.45)},
    ),
    (
        "three disagreeing (happy / sad / angry, 0.45 each)",
        {"speech": ("happy", 0.45), "text": ("sad", 0.45), "image": ("angry", 0.45)},
    ),
    ("two agreeing, confident (happy 0.8 / 0.8)", {"text": ("happy", 0.80), "image": ("happy", 0.80)}),
)


def peaked(label: str, probability: float) -> np.ndarray:
    """Seven probabilities: ``probability`` on ``label``, the rest spread evenly."""
    vector = np.full(NUM_LABELS, (1.0 - probability) / (NUM_LABELS - 1))
    vector[LABEL_TO_INDEX[label]] = probability
    return vector


def example_rows(
    model: FusionModel, guards: Sequence[float], examples: Sequence[tuple[str, Mapping[str, tuple[str, float]]]]
) -> list[tuple[str, list[float]]]:
    """Per example, the fused probability of its first input's top label under each guard."""
    rows = []
    for name, inputs in examples:
        vectors = {m: peaked(label, p) for m, (label, p) in inputs.items()}
        top = LABEL_TO_INDEX[next(iter(inputs.values()))[0]]
        rows.append((name, [float(model.predict([vectors], correlation=c)[0, top]) for c in guards]))
    return rows


def markdown(rows: Sequence[tuple[str, list[float]]], guards: Sequence[float], shipped: float) -> str:
    head = " | ".join(f"c = {c:g}" + (" (shipped)" if c == shipped else "") for c in guards)
    lines = [f"| inputs | {head} |", "|---" * (len(guards) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |" for name, values in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("services/fusion/artifacts"))
    parser.add_argument("--guards", type=float, nargs="+", default=[0.0, 0.2, 0.5, 1.0])
    args = parser.parse_args(argv)
    model = load(args.model)
    guards = sorted({*args.guards, model.correlation})
    print(markdown(example_rows(model, guards, EXAMPLES), guards, model.correlation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
