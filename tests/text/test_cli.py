"""``emotion evaluate text`` and ``emotion predict --text`` on small manifests written by the test."""

import csv
import json
from pathlib import Path

import pytest

from training.cli import main

ROWS = [
    ("I am so happy today!", "happy"),
    ("What a wonderful surprise party, I had no idea!", "surprise"),
    ("I am terrified of the dark.", "fear"),
    ("My best friend moved away and I feel so lonely.", "sad"),
    ("Stop lying to me, I am so angry!", "angry"),
]


def write_manifest(path: Path, rows: list[tuple[str, str]], columns: tuple[str, str] = ("text", "emotion")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def test_evaluate_text_with_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path / "val.csv", ROWS)
    out = tmp_path / "report.json"
    assert main(["evaluate", "text", str(manifest), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy=" in printed
    assert "confusion matrix" in printed
    report = json.loads(out.read_text())
    assert {"n", "accuracy", "macro_f1", "weighted_f1", "labels", "per_class", "confusion"} <= set(report)
    assert report["n"] == len(ROWS)
    assert report["accuracy"] >= 0.8
    assert sum(map(sum, report["confusion"])) == len(ROWS)
    assert report["per_class"]["happy"]["support"] == 1


def test_predict_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "--text", "I am so happy today!"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["label"] == "happy"
    assert sum(result["probabilities"].values()) == pytest.approx(1.0)
    assert result["truncated"] is False
    assert result["model"]["name"] == "minilm-l6-emotion"


def test_predict_empty_text_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "--text", "   "]) == 2
    assert "empty" in capsys.readouterr().err


def test_missing_manifest_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "text", str(tmp_path / "nope.csv")]) == 2
    assert "manifest not found" in capsys.readouterr().err


def test_missing_column_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path / "m.csv", ROWS, columns=("sentence", "emotion"))
    assert main(["evaluate", "text", str(manifest)]) == 2
    assert "lacks column(s) text" in capsys.readouterr().err


def test_unknown_label_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [*ROWS, ("so ashamed", "shame")])
    assert main(["evaluate", "text", str(manifest)]) == 2
    assert "unknown emotion 'shame'" in capsys.readouterr().err


def test_empty_text_row_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [*ROWS, ("  ", "happy")])
    assert main(["evaluate", "text", str(manifest)]) == 2
    assert "m.csv:7" in capsys.readouterr().err


def test_missing_model_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    assert main(["predict", "--text", "I am so happy today!"]) == 2
    assert "Text model is not loaded" in capsys.readouterr().err
