"""``emotion evaluate image`` and ``emotion predict --image`` through the service's code path."""

import csv
import json
from pathlib import Path

import cv2
import pytest

from services.image.settings import get_settings
from tests.image.conftest import encode
from tests.image.synth import face_image, landscape_image
from training.cli import main


@pytest.fixture
def fixture_manifest(tmp_path: Path) -> Path:
    face = face_image(320, 320)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "face.jpg").write_bytes(encode(face, "JPEG"))
    crop = cv2.resize(face[40:280, 40:280], (48, 48), interpolation=cv2.INTER_AREA)
    (tmp_path / "img" / "crop.png").write_bytes(encode(crop, "PNG"))
    (tmp_path / "img" / "scene.webp").write_bytes(encode(landscape_image(), "WEBP"))
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "emotion"])
        writer.writerows([["img/face.jpg", "happy"], ["img/crop.png", "neutral"], ["img/scene.webp", "sad"]])
    return manifest


def test_evaluate_writes_report(fixture_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    assert main(["evaluate", "image", str(fixture_manifest), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 3
    # The landscape has no face: no prediction, counted as wrong, not in any predicted column.
    assert report["no_prediction"] == 1
    assert sum(sum(row) for row in report["confusion"]) == 2
    assert report["per_class"]["sad"]["recall"] == 0.0
    printed = capsys.readouterr().out
    assert "accuracy=" in printed
    assert "no face found in 1 of 3" in printed  # the landscape


def test_evaluate_detect_never_scores_every_image(fixture_manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "image", str(fixture_manifest), "--detect", "never"]) == 0
    assert "no face found" not in capsys.readouterr().out


def test_predict_prints_the_service_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "face.png"
    path.write_bytes(encode(face_image(320, 320), "PNG"))
    assert main(["predict", "--image", str(path)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert len(body["faces"]) == 1
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert body["model"]["name"] == "face-emotion-resnet"


def test_error_cases_exit_2(fixture_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "image", str(tmp_path / "nope.csv")]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("path,emotion\nimg/face.jpg,bored\n")
    assert main(["evaluate", "image", str(bad)]) == 2
    missing = tmp_path / "missing.csv"
    missing.write_text("path,emotion\nimg/absent.jpg,happy\n")
    assert main(["evaluate", "image", str(missing)]) == 2
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert main(["predict", "--image", str(text)]) == 2
    assert main(["predict", "--image", str(tmp_path / "absent.png")]) == 2
    assert "error" in capsys.readouterr().err


def test_missing_model_exits_2(
    fixture_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "empty"))
    get_settings.cache_clear()
    try:
        assert main(["evaluate", "image", str(fixture_manifest)]) == 2
    finally:
        get_settings.cache_clear()
    assert "not loaded" in capsys.readouterr().err
