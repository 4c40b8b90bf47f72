"""Stage 1: which validation items each modality is scored on, and the cache it writes."""

import csv
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from shared.calibration import CALIBRATION_FILE, Calibrator
from training.fusion import predict_modalities as stage1
from training.fusion.data import ModalityItems
from training.manifest import Manifest, ManifestError


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A miniature copy of the shared data layout (tiny files, not real data)."""
    speech_rows = []
    for actor in (1, 12, 13, 16, 17, 18, 19, 20):
        path = f"Actor_{actor:02d}/03-01-03-01-01-01-{actor:02d}.flac"
        (tmp_path / "speech/ravdess" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "speech/ravdess" / path).write_bytes(b"x")
        speech_rows.append([path, "happy", f"ravdess_{actor:02d}"])
    _csv(tmp_path / "speech/ravdess/manifest.csv", ["path", "emotion", "speaker"], speech_rows)
    _csv(tmp_path / "text/a/val.csv", ["text", "emotion"], [["so happy", "happy"], ["So  HAPPY", "happy"]])
    _csv(tmp_path / "text/b/val.csv", ["text", "emotion"], [["bad service: reject me", "angry"], ["gloomy", "sad"]])
    _csv(tmp_path / "text/b/train.csv", ["text", "emotion"], [["never used", "sad"]])
    image_rows = []
    for split, name, value in (("train", "t.png", 10), ("public_test", "a.png", 50), ("public_test", "b.png", 50)):
        path = f"{split}/happy/{name}"
        (tmp_path / "image/fer2013" / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "image/fer2013" / path), np.full((48, 48), value, np.uint8))
        image_rows.append([path, "happy", split])
    _csv(tmp_path / "image/fer2013/manifest.csv", ["path", "emotion", "split"], image_rows)
    return tmp_path


def test_validation_items_only(data_root: Path) -> None:
    ((_, speech, ids, groups),) = stage1.validation_sets("speech", data_root)
    # Actors 17-20: never the final speech model's training actors (01-16).
    assert groups == [f"ravdess_{a}" for a in (17, 18, 19, 20)]
    assert all(i.startswith("ravdess/Actor_") for i in ids) and len(speech.rows) == 4
    text = stage1.validation_sets("text", data_root)
    assert [source for source, *_ in text] == ["a", "b"]
    assert text[0][3][0] == text[0][3][1]  # same text up to case/space: same split group
    ((_, image, _, image_groups),) = stage1.validation_sets("image", data_root)
    assert [r["split"] for r in image.rows] == ["public_test", "public_test"]
    assert image_groups[0] == image_groups[1]  # pixel-identical twins share a group


def test_predict_modality_caches_and_skips_refused_rows(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def predict_manifest(manifest: Manifest) -> np.ndarray:
        calls.append(len(manifest.rows))
        if any("reject" in t for t in manifest.column("text")):
            raise ManifestError("text rejected")
        return np.tile(np.eye(7)[3], (len(manifest.rows), 1))

    fake = types.ModuleType("training.text.evaluate")
    fake.predict_manifest = predict_manifest  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "training.text.evaluate", fake)
    path = stage1.predict_modality("text", data_root=data_root, out_dir=tmp_path / "cache")
    items = ModalityItems.load(path)
    assert len(items) == 4 and items.ids.tolist()[2] == "b/val.csv:2"
    assert np.isnan(items.probs[2]).all() and np.isfinite(items.probs[[0, 1, 3]]).all()
    assert len(items.usable()) == 3
    assert calls == [2, 2, 1, 1]


def _out_of_fold(data_root: Path, path: Path, actors: tuple[int, ...] = (1, 12, 13, 16)) -> np.ndarray:
    """An ``out_of_fold_clips.npz`` as ``train_whisper calibrate`` writes it; returns its raw probabilities."""
    raw = np.random.default_rng(0).dirichlet(np.ones(7), size=len(actors))
    files = [data_root / f"speech/ravdess/Actor_{a:02d}/03-01-03-01-01-01-{a:02d}.flac" for a in actors]
    np.savez(
        path,
        paths=np.array([str(f) for f in files]),
        labels=np.full(len(actors), 3),
        actors=np.array(actors),
        probs=raw,
    )
    return raw


def test_speech_out_of_fold_items_are_calibrated_like_the_service(data_root: Path, tmp_path: Path) -> None:
    raw = _out_of_fold(data_root, tmp_path / "oof.npz")
    calibrator = Calibrator.temperature(2.0)
    calibrator.save(tmp_path / CALIBRATION_FILE)
    items = stage1.speech_out_of_fold(tmp_path / "oof.npz", data_root, model_dir=tmp_path)
    assert items.ids.tolist() == [f"ravdess/Actor_{a:02d}/03-01-03-01-01-01-{a:02d}.flac" for a in (1, 12, 13, 16)]
    assert items.groups.tolist() == ["ravdess_01", "ravdess_12", "ravdess_13", "ravdess_16"]
    np.testing.assert_allclose(items.probs, calibrator(raw))
    with pytest.raises(FileNotFoundError, match="train_whisper calibrate"):
        stage1.speech_out_of_fold(tmp_path / "missing.npz", data_root)
    _out_of_fold(data_root, tmp_path / "bad.npz", actors=(1, 17))  # 17 is a fusion-test actor
    with pytest.raises(ManifestError, match="below 17"):
        stage1.speech_out_of_fold(tmp_path / "bad.npz", data_root)


def test_speech_cache_holds_out_of_fold_and_unseen_actors(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("training.speech.evaluate")
    fake.predict_manifest = lambda manifest: np.tile(np.eye(7)[3], (len(manifest.rows), 1))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "training.speech.evaluate", fake)
    _out_of_fold(data_root, tmp_path / "oof.npz")
    items = ModalityItems.load(
        stage1.predict_modality("speech", data_root=data_root, out_dir=tmp_path / "c", speech_oof=tmp_path / "oof.npz")
    )
    assert items.groups.tolist() == [f"ravdess_{a:02d}" for a in (1, 12, 13, 16, 17, 18, 19, 20)]
    assert len(set(items.ids.tolist())) == 8


def test_missing_evaluator_is_reported(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "training.speech.evaluate", None)  # import fails
    _out_of_fold(data_root, tmp_path / "oof.npz")
    argv = [
        "--data",
        str(data_root),
        "--out",
        str(tmp_path),
        "--only",
        "speech",
        "--speech-oof",
        str(tmp_path / "oof.npz"),
    ]
    assert stage1.main(argv) == 1
    assert not (tmp_path / "speech.npz").exists()
