"""Write a one-split ``path,emotion`` manifest (absolute paths) from FER2013's manifest.csv.

    python -m training.image.split_manifest --split public_test --labels fer2013 --out /tmp/fer_public_test.csv
    python -m training.image.split_manifest --split public_test --labels ferplus --out /tmp/ferplus_public_test.csv

``--labels ferplus`` uses the FER+ majority vote and drops images without one (no majority, contempt, unknown).
"""

import argparse
import csv
from pathlib import Path

from shared.labels import LABEL_TO_INDEX
from training.image.data import DEFAULT_ROOT


def write_split_manifest(root: Path, split: str, labels: str, out: Path) -> int:
    """Write the manifest and return its row count."""
    rows = []
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["split"] != split:
                continue
            emotion = row["emotion"] if labels == "fer2013" else (row.get("ferplus_majority") or "")
            if emotion in LABEL_TO_INDEX:
                rows.append({"path": str((root / row["path"]).resolve()), "emotion": emotion})
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "emotion"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_ROOT))
    parser.add_argument("--split", default="public_test", choices=["train", "public_test"])
    parser.add_argument("--labels", default="fer2013", choices=["fer2013", "ferplus"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    n = write_split_manifest(Path(args.data), args.split, args.labels, Path(args.out))
    print(f"wrote {n} rows to {args.out}")


if __name__ == "__main__":
    main()
