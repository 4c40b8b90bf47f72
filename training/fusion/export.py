"""Write the fusion-test items of each modality as manifests for ``emotion evaluate fusion``.

    python -m training.fusion.export --probs /tmp/fusion_probs --data ../shared/data --out /tmp/fusion_test_manifests

Same split as ``training.fusion.train`` (same seed and test fraction), so evaluating the shipped
forest on these manifests never touches a fusion-train item. Paths are written absolute.
"""

import argparse
import csv
import sys
from pathlib import Path

from shared.labels import LABELS, MODALITIES
from training.fusion.train import SPEECH_TEST_ACTORS, load_parts, split_parts

ROOTS = {"ravdess": "speech/ravdess", "fer2013": "image/fer2013"}


def _text_rows(data_root: Path, ids: list[str]) -> list[str]:
    cache: dict[str, list[list[str]]] = {}
    texts = []
    for item in ids:
        name, line = item.rsplit(":", 1)
        if name not in cache:
            with (data_root / "text" / name).open(newline="", encoding="utf-8") as handle:
                cache[name] = list(csv.reader(handle))
        header = cache[name][0]
        texts.append(cache[name][int(line) - 1][header.index("text")])
    return texts


def export(probs: Path, data_root: Path, out: Path, *, seed: int = 0, test_fraction: float = 0.4) -> dict[str, Path]:
    """One manifest per modality with its fusion-test items; returns their paths."""
    _, test_parts = split_parts(
        load_parts(probs), seed=seed, test_fraction=test_fraction, speech_test_groups=SPEECH_TEST_ACTORS
    )
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for m in MODALITIES:
        items = test_parts[m]
        ids = [str(i) for i in items.ids]
        labels = [LABELS[int(y)] for y in items.labels]
        if m == "text":
            header, values = ["text", "emotion"], _text_rows(data_root, ids)
        else:
            header = ["path", "emotion"]
            values = [str((data_root / ROOTS[i.split("/", 1)[0]] / i.split("/", 1)[1]).resolve()) for i in ids]
        path = out / f"{m}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(zip(values, labels, strict=True))
        written[m] = path
        print(f"wrote {path} ({len(values)} rows)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probs", type=Path, default=Path("/tmp/fusion_probs"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/fusion_test_manifests"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.4)
    args = parser.parse_args(argv)
    export(args.probs, args.data, args.out, seed=args.seed, test_fraction=args.test_fraction)
    return 0


if __name__ == "__main__":
    sys.exit(main())
