"""`emotion evaluate speech` and `emotion predict --audio` through the service's code path."""

import json
from pathlib import Path

import numpy as np
import pytest

from shared.labels import LABELS
from tests.speech.conftest import encode, voice, wav_bytes
from training.cli import main
from training.speech.make_manifest import parse_actors, write_manifest


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    (tmp_path / "a.wav").write_bytes(wav_bytes(voice(2.0, seed=1)))
    (tmp_path / "b.flac").write_bytes(encode(voice(2.5, 22050, f0=230, seed=2), 22050, "FLAC", "PCM_16"))
    (tmp_path / "silent.wav").write_bytes(wav_bytes(np.zeros(16000, dtype=np.float32)))
    return tmp_path


def test_evaluate_writes_a_report(clips: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = clips / "manifest.csv"
    manifest.write_text("path,emotion\na.wav,happy\nb.flac,sad\n", encoding="utf-8")
    out = clips / "report.json"
    assert main(["evaluate", "speech", str(manifest), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 2
    assert sum(map(sum, report["confusion"])) == 2
    assert report["per_class"]["happy"]["support"] == 1
    assert "accuracy=" in capsys.readouterr().out


def test_predict_audio_prints_the_service_json(clips: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "--audio", str(clips / "b.flac")]) == 0
    body = json.loads(capsys.readouterr().out)
    assert list(body["probabilities"]) == list(LABELS)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert body["duration_s"] == pytest.approx(2.5, abs=0.01)
    assert len(body["segments"]) == 1


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("path,emotion\nmissing.wav,happy\n", "do not exist"),
        ("path,emotion\na.wav,bored\n", "unknown emotion"),
        ("file,emotion\na.wav,happy\n", "lacks column"),
        ("path,emotion\nsilent.wav,neutral\n", "No speech"),
    ],
)
def test_evaluate_errors_exit_2(clips: Path, rows: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = clips / "m.csv"
    manifest.write_text(rows, encoding="utf-8")
    assert main(["evaluate", "speech", str(manifest)]) == 2
    assert message in capsys.readouterr().err


def test_predict_errors_exit_2(clips: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "--audio", str(clips / "nope.wav")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["predict", "--audio", str(clips / "silent.wav")]) == 2
    assert "No speech" in capsys.readouterr().err


def test_missing_model_exits_2(
    clips: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_DIR", str(clips / "no-model-here"))
    assert main(["predict", "--audio", str(clips / "a.wav")]) == 2
    assert "not loaded" in capsys.readouterr().err


def test_make_manifest_keeps_only_the_chosen_actors(tmp_path: Path) -> None:
    source = tmp_path / "manifest.csv"
    source.write_text(
        "path,emotion,speaker\nActor_16/x.flac,happy,ravdess_16\nActor_17/y.flac,sad,ravdess_17\n"
        "Actor_20/z.flac,angry,ravdess_20\n",
        encoding="utf-8",
    )
    out = tmp_path / "held_out.csv"
    assert parse_actors("17-20") == {17, 18, 19, 20}
    assert write_manifest(source, parse_actors("17-20"), out) == 2
    lines = out.read_text().splitlines()
    assert lines[0] == "path,emotion,speaker"
    assert lines[1].startswith(str(tmp_path / "Actor_17" / "y.flac"))
    assert "Actor_16" not in out.read_text()
