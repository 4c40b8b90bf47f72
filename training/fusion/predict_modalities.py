"""Stage 1 of fusion training: cache each modality model's probabilities on its validation items.

    python -m training.fusion.predict_modalities --data ../shared/data --out /tmp/fusion_probs/ [--only speech]

Runs ``training.<modality>.evaluate.predict_manifest`` (the services' own code path) on:

* speech: RAVDESS actors 17-20 (``speech/ravdess/manifest.csv``, ``speaker`` column), which the speech
  model never trained on, and, from ``--speech-oof`` (written by ``training.speech.train_whisper
  calibrate``), actors 01-16 predicted out of fold: each clip by heads trained without its actor
  (same recipe), passed through the shipped calibrator as the service would;
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

#: RAVDESS actors the final speech model was not trained on (its heads train on actors 01-16).
SPEECH_VALIDATION_ACTORS = tuple(range(17, 21))
#: Where ``make train-speech`` leaves the out-of-fold probabilities of actors 01-16.
DEFAULT_SPEECH_OOF = Path("/tmp/speech_head/out_of_fold_clips.npz")
SPEECH_MODEL_DIR = Path(__file__).resolve().parents[2] / "services/speech/artifacts"
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


def speech_out_of_fold(path: Path, data_root: Path, model_dir: Path = SPEECH_MODEL_DIR) -> ModalityItems:
    """Actors 01-16 as fusion items: out-of-fold clip probabilities, calibrated by the shipped calibrator.

    Ids are ``ravdess/<manifest path>`` like the service-path items; groups are ``ravdess_NN``.
    """
    from shared.calibration import load_calibrator

    if not path.is_file():
        raise FileNotFoundError(
            f"no out-of-fold speech probabilities at {path}; run python -m training.speech.train_whisper calibrate"
        )
    root = (data_root / "speech/ravdess").resolve()
    with np.load(path, allow_pickle=False) as data:
        paths, labels, actors, raw = data["paths"], data["labels"], data["actors"], data["probs"]
    if np.any(actors >= SPEECH_VALIDATION_ACTORS[0]):
        raise ManifestError(f"{path}: out-of-fold clips must be of actors below {SPEECH_VALIDATION_ACTORS[0]}")
    ids = [f"ravdess/{Path(str(p)).resolve().relative_to(root).as_posix()}" for p in paths]
    return ModalityItems(
        modality="speech",
        probs=load_calibrator(model_dir)(raw),
        labels=labels.astype(np.int64),
        ids=np.asarray(ids),
        groups=np.asarray([f"ravdess_{int(a):02d}" for a in actors]),
    )


def predict_modality(
    modality: str,
    *,
    data_root: Path,
    out_dir: Path,
    options: dict[str, Any] | None = None,
    limit: int | None = None,
    speech_oof: Path = DEFAULT_SPEECH_OOF,
) -> Path:
    """Run the modality's ``predict_manifest`` on its validation items and cache them as ``<modality>.npz``.

    Speech items also get the out-of-fold clips of ``speech_oof`` (read first: a missing file fails
    before any prediction is made).
    """
    oof = speech_out_of_fold(speech_oof, data_root) if modality == "speech" else None
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
    if oof is not None:
        accuracy = float(np.mean(oof.probs.argmax(axis=1) == oof.labels))
        print(f"{modality}/out-of-fold: {len(oof)} clips of actors 01-16, accuracy {accuracy:.4f}", flush=True)
        probs.insert(0, oof.probs)
        labels[:0] = oof.labels.tolist()
        ids[:0] = oof.ids.tolist()
        groups[:0] = oof.groups.tolist()
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
    parser.add_argument(
        "--speech-oof",
        type=Path,
        default=DEFAULT_SPEECH_OOF,
        help="out-of-fold speech probabilities of actors 01-16 (training.speech.train_whisper calibrate)",
    )
    args = parser.parse_args(argv)
    failed = []
    for modality in args.only:
        options = {"detect": args.image_detect} if modality == "image" else {}
        try:
            path = predict_modality(
                modality,
                data_root=args.data,
                out_dir=args.out,
                options=options,
                limit=args.limit,
                speech_oof=args.speech_oof,
            )
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
