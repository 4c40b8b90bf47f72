"""Load FER2013 (+ FER+ majority labels) from its manifest into uint8 arrays, cached as .npz in /tmp."""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from shared.labels import LABEL_TO_INDEX

DEFAULT_ROOT = Path("/work/shared/data/image/fer2013")
DEFAULT_CACHE = Path("/tmp/fer2013_cache")


@dataclass(frozen=True)
class Split:
    """Images (n, 48, 48) uint8, FER2013 labels (n,), FER+ majority labels (n,; -1 where none)."""

    images: np.ndarray
    labels: np.ndarray
    ferplus: np.ndarray


def _read_split(root: Path, split: str) -> Split:
    images: list[np.ndarray] = []
    labels: list[int] = []
    ferplus: list[int] = []
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["split"] != split:
                continue
            with Image.open(root / row["path"]) as image:
                array = np.asarray(image.convert("L").resize((48, 48)), dtype=np.uint8)
            images.append(array)
            labels.append(LABEL_TO_INDEX[row["emotion"]])
            ferplus.append(LABEL_TO_INDEX.get(row.get("ferplus_majority") or "", -1))
    return Split(np.stack(images), np.asarray(labels, dtype=np.int64), np.asarray(ferplus, dtype=np.int64))


def load_split(split: str, root: Path = DEFAULT_ROOT, cache: Path | None = DEFAULT_CACHE) -> Split:
    """One split of the manifest, read once and then served from the cache."""
    if cache is None:
        return _read_split(root, split)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{split}.npz"
    if not path.exists():
        data = _read_split(root, split)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=data.images, labels=data.labels, ferplus=data.ferplus)
        tmp.rename(path)
    with np.load(path) as stored:
        return Split(stored["images"], stored["labels"], stored["ferplus"])
