"""Metrics and manifest handling shared by every ``emotion evaluate`` command."""

from pathlib import Path

import numpy as np
import pytest

from training.cli import main
from training.manifest import ManifestError, read_manifest
from training.report import classification_report, format_report, report_from_probabilities, save_confusion_png


def test_report_matches_hand_computed_metrics() -> None:
    # 4 samples: happy, happy, sad, angry -> predicted happy, sad, sad, angry
    report = classification_report([3, 3, 4, 0], [3, 4, 4, 0])
    assert report["n"] == 4
    assert report["accuracy"] == pytest.approx(0.75)
    assert report["per_class"]["happy"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert report["per_class"]["sad"]["precision"] == pytest.approx(0.5)
    # macro over the three classes present: (1 + 2/3 + 2/3) / 3
    assert report["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert report["confusion"][3][4] == 1
    assert set(report) == {"n", "accuracy", "macro_f1", "weighted_f1", "labels", "per_class", "confusion"}


def test_report_from_probabilities_uses_argmax_and_renders(tmp_path: Path) -> None:
    probs = np.eye(7)[[0, 1, 2, 3, 4, 5, 6]]
    report = report_from_probabilities(list(range(7)), probs)
    assert report["accuracy"] == 1.0
    text = format_report(report, title="demo")
    assert "accuracy=1.0000" in text
    assert "confusion matrix" in text
    png = tmp_path / "cm.png"
    save_confusion_png(report, str(png), "demo")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_without_prediction_count_as_wrong_not_as_a_label() -> None:
    probs = np.full((3, 7), np.nan)
    probs[0] = np.eye(7)[3]
    # true labels: happy (answered, right), angry (no answer), angry (no answer)
    report = report_from_probabilities([3, 0, 0], probs)
    assert report["accuracy"] == pytest.approx(1 / 3)
    assert report["no_prediction"] == 2
    assert report["per_class"]["angry"]["recall"] == 0.0
    assert report["per_class"]["angry"]["precision"] == 0.0
    assert "no prediction (counted as wrong): 2" in format_report(report)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_validation(tmp_path: Path) -> None:
    good = read_manifest(write(tmp_path / "ok.csv", "text,emotion\nyay,Happy\nugh,sad\n"), "text")
    assert good.labels == [3, 4]
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "absent.csv", "text")
    with pytest.raises(ManifestError, match="lacks column"):
        read_manifest(write(tmp_path / "cols.csv", "sentence,emotion\nyay,happy\n"), "text")
    with pytest.raises(ManifestError, match=r"unknown emotion 'joy'"):
        read_manifest(write(tmp_path / "label.csv", "text,emotion\nyay,joy\n"), "text")
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(write(tmp_path / "empty.csv", "text,emotion\n"), "text")
    paths = read_manifest(write(tmp_path / "p.csv", "path,emotion\nmissing.wav,sad\n"), "path")
    with pytest.raises(ManifestError, match="do not exist"):
        paths.resolve()


def test_cli_reports_manifest_errors_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "text", str(tmp_path / "nope.csv")]) == 2
    assert "manifest not found" in capsys.readouterr().err
    assert main(["predict", "--image", str(tmp_path / "nope.png")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["predict"]) == 2
