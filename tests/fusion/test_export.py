"""Exporting fusion-test items as manifests: the same split as training, readable by the CLI."""

import csv
from pathlib import Path

import numpy as np

from shared.labels import LABELS
from training.fusion.data import ModalityItems
from training.fusion.export import export
from training.fusion.train import split_parts
from training.manifest import read_manifest


def _items(modality: str, ids: list[str], groups: list[str]) -> ModalityItems:
    n = len(ids)
    labels = np.arange(n) % 7
    return ModalityItems(modality, np.eye(7)[labels], labels, np.array(ids), np.array(groups))


def test_export_writes_only_fusion_test_items(tmp_path: Path) -> None:
    data, probs = tmp_path / "data", tmp_path / "probs"
    (data / "text/a").mkdir(parents=True)
    texts = [[f"text number {i}", LABELS[i % 7]] for i in range(40)]
    with (data / "text/a/val.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text", "emotion"], *texts])
    parts = {
        "speech": _items(
            "speech",
            [f"ravdess/Actor_{13 + i % 8}/{i}.flac" for i in range(28)],
            [f"ravdess_{13 + i % 8}" for i in range(28)],
        ),
        "text": _items("text", [f"a/val.csv:{i + 2}" for i in range(40)], [f"t{i}" for i in range(40)]),
        "image": _items("image", [f"fer2013/public_test/{i}.png" for i in range(30)], [f"i{i}" for i in range(30)]),
    }
    for m, items in parts.items():
        items.save(probs / f"{m}.npz")

    written = export(probs, data, tmp_path / "out")
    _, test_parts = split_parts(parts, seed=0, test_fraction=0.4)

    speech = read_manifest(written["speech"], "path")
    assert {Path(p).parent.name for p in speech.column("path")} == {f"Actor_{a}" for a in range(17, 21)}
    assert all(Path(p).is_absolute() for p in speech.column("path"))
    text = read_manifest(written["text"], "text")
    expected = [texts[int(i.split(":")[1]) - 2] for i in test_parts["text"].ids]
    assert [[r["text"], r["emotion"]] for r in text.rows] == expected
    image = read_manifest(written["image"], "path")
    assert len(image.rows) == len(test_parts["image"]) == 12
    assert str(data / "image/fer2013/public_test") in image.column("path")[0]
