"""Write a manifest of some RAVDESS actors (absolute paths), e.g. the held-out actors 17-20.

    python -m training.speech.make_manifest --data ../shared/data/speech/ravdess \
        --actors 17-20 --out /tmp/ravdess_actors_17_20.csv
"""

import argparse
import csv
from pathlib import Path


def parse_actors(spec: str) -> set[int]:
    """'17-20' or '1,3,5-7' -> a set of actor numbers."""
    actors: set[int] = set()
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            actors.update(range(int(lo), int(hi) + 1))
        elif part.strip():
            actors.add(int(part))
    return actors


def write_manifest(source: Path, actors: set[int], out: Path) -> int:
    """Copy the rows of ``source`` whose speaker is one of ``actors``; paths made absolute."""
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if int(r["speaker"].rsplit("_", 1)[-1]) in actors]
    for row in rows:
        row["path"] = str((source.parent / row["path"]).resolve())
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/speech/ravdess", help="folder holding manifest.csv")
    parser.add_argument("--actors", default="17-20", help="actor numbers, e.g. 17-20")
    parser.add_argument("--out", default="/tmp/ravdess_actors_17_20.csv")
    args = parser.parse_args(argv)
    n = write_manifest(Path(args.data) / "manifest.csv", parse_actors(args.actors), Path(args.out))
    print(f"wrote {args.out} ({n} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
