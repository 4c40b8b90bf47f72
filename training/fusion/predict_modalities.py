"""Stage 1 of fusion training: cache each modality model's probabilities on its validation items.

    python -m training.fusion.predict_modalities --data ../shared/data --out /tmp/fusion_probs/ [--only speech]

Runs ``training.<modality>.evaluate.predict_manifest`` (the services' own code path) on:

* speech: RAVDESS actors 13-20 (``speech/ravdess/manifest.csv``, ``speaker`` column): the speech model
  was trained on actors 01-12 (+TESS) and only *selected* (early stopping, ensemble choice) on 13-16;
  17-20 it never saw;
* text: every ``text/*/val.csv`` (``text,emotion``);
* image: FER2013 ``public_test`` rows of ``image/fer2013/manifest.csv`` (already face crops, so
  ``detect=never`` by default).

Writes ``<out>/<modality>.npz`` (probabilities, labels, item ids and split groups) — predictions
on held-out data only, never on a model's own training data. One modality at a time is fine.
"""

import argparse
import hashlib
import importlib
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import ServiceError
from shared.labels import MODALITIES, NUM_LABELS
from training.fusion.data import ModalityItems
from training.manifest import Manifest, ManifestError, read_manifest

#: RAVDESS actors the speech model was not trained on (13-16: its selection split; 17-20: unused).
SPEECH_VALIDATION_ACTORS = tuple(range(13, 21))
IMAGE_VALIDATION_SPLIT = "public_test"


def _subset(manifest: Manifest, keep: list[bool]) -> Manifest:
    rows = [r for r, k in zip(manifest.rows, keep, strict=True) if k]
    labels = [y for y, k in zip(manifest.labels, keep, strict=True) if k]
    if not rows:
        raise ManifestError(f"{manifest.path}: no validation rows selected")
    return Manifest(path=manifest.path, rows=rows, labels=labels)


def _actor(row: dict[str, str]) -> int:
    match = re.search(r"(\d+)\s*$", row.get("speaker") or row.get("actor") or "")
    if match is None:
        raise ManifestError(f"cannot tell the actor of {row.get('path')!r} (no speaker/actor column)")
    return int(match.group(1))


def _normalised_text(text: str) -> str:
    return " ".join(text.lower().split())


def _pixel_hash(path: Path) -> str:
    """Hash of decoded pixels, so pixel-identical FER2013 twins land in the same split group."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    data = image.tobytes() if image is not None else path.read_bytes()
    return hashlib.sha1(data).hexdigest()[:16]


def validation_sets(modality: str, data_root: Path) -> list[tuple[str, Manifest, list[str], list[str]]]:
    """(source, manifest, item ids, split groups) for each validation manifest of ``modality``."""
    if modality == "speech":
        manifest = read_manifest(data_root / "speech/ravdess/manifest.csv", "path")
        part = _subset(manifest, [_actor(r) in SPEECH_VALIDATION_ACTORS for r in manifest.rows])
        ids = [f"ravdess/{r['path']}" for r in part.rows]
        groups = [f"ravdess_{_actor(r):02d}" for r in part.rows]
        return [("ravdess", part, ids, groups)]
    if modality == "text":
        sets = []
        for csv_path in sorted((data_root / "text").glob("*/val.csv")):
            manifest = read_manifest(csv_path, "text")
            source = csv_path.parent.name
            ids = [f"{source}/val.csv:{i + 2}" for i in range(len(manifest.rows))]
            groups = [hashlib.sha1(_normalised_text(r["text"]).encode()).hexdigest()[:16] for r in manifest.rows]
            sets.append((source, manifest, ids, groups))
        if not sets:
            raise ManifestError(f"no text/*/val.csv under {data_root}")
        return sets
    if modality == "image":
        manifest = read_manifest(data_root / "image/fer2013/manifest.csv", "path")
        part = _subset(manifest, [r.get("split") == IMAGE_VALIDATION_SPLIT for r in manifest.rows])
        ids = [f"fer2013/{r['path']}" for r in part.rows]
        groups = [_pixel_hash(p) for p in part.resolve("path")]
        return [("fer2013", part, ids, groups)]
    raise ValueError(f"unknown modality {modality!r}")


def predict_chunked(module: Any, manifest: Manifest, options: dict[str, Any], chunk: int = 256) -> np.ndarray:
    """``predict_manifest`` in chunks; a chunk the model refuses is retried row by row, refused rows -> NaN.

    (E.g. a text the service would reject with 422 is not a validation item the service can score.)
    """
    out = np.full((len(manifest.rows), NUM_LABELS), np.nan)
    for start in range(0, len(manifest.rows), chunk):
        stop = min(start + chunk, len(manifest.rows))
        part = Manifest(path=manifest.path, rows=manifest.rows[start:stop], labels=manifest.labels[start:stop])
        try:
            out[start:stop] = module.predict_manifest(part, **options)
        except (ManifestError, ServiceError) as exc:
            print(f"  rows {start}-{stop}: {exc}; retrying one by one", flush=True)
            for i in range(start, stop):
                one = Manifest(path=manifest.path, rows=[manifest.rows[i]], labels=[manifest.labels[i]])
                try:
                    out[i] = module.predict_manifest(one, **options)[0]
                except (ManifestError, ServiceError) as row_exc:
                    print(f"  skipped item {i}: {row_exc}", flush=True)
    return out


def predict_modality(
    modality: str, *, data_root: Path, out_dir: Path, options: dict[str, Any] | None = None, limit: int | None = None
) -> Path:
    """Run the modality's ``predict_manifest`` on its validation items and cache them as ``<modality>.npz``."""
    try:
        module = importlib.import_module(f"training.{modality}.evaluate")
    except ModuleNotFoundError as exc:
        raise ManifestError(f"training.{modality}.evaluate is not available yet ({exc})") from exc
    options = dict(options or {})
    if modality == "image":
        options.setdefault("detect", "never")
    probs, labels, ids, groups = [], [], [], []
    for source, full, all_ids, all_groups in validation_sets(modality, data_root):
        manifest, set_ids, set_groups = full, all_ids, all_groups
        if limit is not None and len(manifest.rows) > limit:
            # A seeded, label-agnostic subsample keeps the run short; recorded in the ids.
            keep = np.zeros(len(manifest.rows), dtype=bool)
            keep[np.random.default_rng(0).choice(len(manifest.rows), limit, replace=False)] = True
            manifest = _subset(manifest, keep.tolist())
            set_ids = [i for i, k in zip(set_ids, keep, strict=True) if k]
            set_groups = [g for g, k in zip(set_groups, keep, strict=True) if k]
        start = time.perf_counter()
        p = predict_chunked(module, manifest, options)
        ok = np.isfinite(p).all(axis=1)
        usable = int(ok.sum())
        accuracy = float(np.mean(p[ok].argmax(axis=1) == np.asarray(manifest.labels)[ok])) if usable else 0.0
        print(
            f"{modality}/{source}: {len(manifest.rows)} items ({usable} usable) in {time.perf_counter() - start:.1f}s,"
            f" accuracy {accuracy:.4f}",
            flush=True,
        )
        probs.append(p)
        labels.extend(manifest.labels)
        ids.extend(set_ids)
        groups.extend(set_groups)
    items = ModalityItems(
        modality=modality,
        probs=np.concatenate(probs),
        labels=np.asarray(labels, dtype=np.int64),
        ids=np.asarray(ids),
        groups=np.asarray(groups),
    )
    return items.save(out_dir / f"{modality}.npz")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="data root")
    parser.add_argument("--out", type=Path, default=Path("/tmp/fusion_probs"), help="cache folder")
    parser.add_argument("--only", nargs="+", choices=MODALITIES, default=list(MODALITIES))
    parser.add_argument("--image-detect", default="never", choices=["auto", "always", "never"])
    parser.add_argument("--limit", type=int, help="at most this many items per validation manifest (quick runs)")
    args = parser.parse_args(argv)
    failed = []
    for modality in args.only:
        options = {"detect": args.image_detect} if modality == "image" else {}
        try:
            path = predict_modality(modality, data_root=args.data, out_dir=args.out, options=options, limit=args.limit)
        except (ManifestError, ServiceError, FileNotFoundError, ValueError) as exc:
            print(f"{modality}: FAILED: {exc}", file=sys.stderr, flush=True)
            failed.append(modality)
            continue
        print(f"wrote {path}", flush=True)
    if failed:
        print(f"not cached: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
