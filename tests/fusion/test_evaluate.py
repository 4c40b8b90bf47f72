"""evaluate_fusion and `emotion evaluate fusion` with deterministic fake modality predictors.

The real modality models are exercised by test_cli_end_to_end.py; here the predictors are
injected so the fusion logic (dedup, triples, subsets, metrics) is tested on its own.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from services.fusion.model import SUBSET_NAMES, FusionModel, load
from services.fusion.settings import Settings
from shared.labels import LABEL_TO_INDEX
from training import cli
from training.fusion import evaluate as fusion_evaluate
from training.fusion.evaluate import evaluate_fusion
from training.manifest import Manifest, ManifestError

LABELS_USED = ("angry", "happy", "sad")


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def manifests(tmp_path: Path) -> dict[str, str]:
    """Two items per label per modality; files named after their label (the fakes read the name)."""
    rows_path: list[list[str]] = []
    for label in LABELS_USED:
        for k in range(2):
            (tmp_path / f"{label}_{k}.bin").write_bytes(b"x")
            rows_path.append([f"{label}_{k}.bin", label])
    texts = [[f"I feel {label} #{k}", label] for label in LABELS_USED for k in range(2)]
    # A duplicated text and an extra label only text has (not shared, so never drawn).
    texts += [["I feel happy #0", "happy"], ["I feel neutral", "neutral"]]
    return {
        "speech": _write_csv(tmp_path / "speech.csv", ["path", "emotion"], rows_path),
        "text": _write_csv(tmp_path / "text.csv", ["text", "emotion"], texts),
        "image": _write_csv(tmp_path / "image.csv", ["path", "emotion"], rows_path),
    }


def _peaked(index: int) -> np.ndarray:
    p = np.full(7, 0.05)
    p[index] = 0.7
    return p


class FakePredictor:
    """Peaked on the label named in the input (file name or text), or always on ``constant``."""

    def __init__(self, column: str, constant: str | None = None) -> None:
        self.column = column
        self.constant = constant
        self.seen: list[str] = []

    def __call__(self, manifest: Manifest) -> np.ndarray:
        values = manifest.column(self.column)
        self.seen.extend(values)
        out = []
        for value in values:
            name = self.constant or next(label for label in LABEL_TO_INDEX if label in value)
            out.append(_peaked(LABEL_TO_INDEX[name]))
        return np.array(out)


@pytest.fixture
def fakes() -> dict[str, FakePredictor]:
    return {
        "speech": FakePredictor("path", constant="angry"),
        "text": FakePredictor("text"),
        "image": FakePredictor("path"),
    }


def test_results_cover_every_subset_and_single(
    manifests: dict[str, str], fakes: dict[str, FakePredictor], trained: tuple[FusionModel, dict]
) -> None:
    results = evaluate_fusion(**manifests, n=30, seed=1, predictors=fakes, model=trained[0])
    singles = [f"{m} (single model)" for m in ("speech", "text", "image")]
    assert list(results) == [*SUBSET_NAMES, *singles]
    for name in SUBSET_NAMES:
        assert results[name]["kind"] == "fusion" and results[name]["modalities"] == name.split("+")
        assert results[name]["n"] == 30 and 0 <= results[name]["accuracy"] <= 1
    # Labels are balanced over the three shared ones, so a constant speech model is right 1/3 of the time.
    assert results["speech (single model)"]["accuracy"] == pytest.approx(1 / 3)
    assert results["text (single model)"]["accuracy"] == 1.0
    assert results["image (single model)"]["accuracy"] == 1.0
    # Two confident correct modalities outvote the broken one.
    assert results["text+image"]["accuracy"] == 1.0
    assert results["speech+text+image"]["accuracy"] >= 0.9


def test_each_distinct_input_is_predicted_once(
    manifests: dict[str, str], fakes: dict[str, FakePredictor], trained: tuple[FusionModel, dict]
) -> None:
    evaluate_fusion(**manifests, n=50, seed=0, predictors=fakes, model=trained[0])
    assert len(fakes["text"].seen) == len(set(fakes["text"].seen)) == 7  # 8 rows, one duplicate
    assert len(fakes["image"].seen) == 6


def test_same_seed_same_result(
    manifests: dict[str, str], fakes: dict[str, FakePredictor], trained: tuple[FusionModel, dict]
) -> None:
    first = evaluate_fusion(**manifests, n=40, seed=5, predictors=fakes, model=trained[0])
    again = evaluate_fusion(**manifests, n=40, seed=5, predictors=fakes, model=trained[0])
    assert first == again


def test_unusable_rows_are_skipped(
    manifests: dict[str, str], fakes: dict[str, FakePredictor], trained: tuple[FusionModel, dict]
) -> None:
    def no_face_for_sad(manifest: Manifest) -> np.ndarray:
        out = fakes["image"](manifest)
        out[[("sad" in v) for v in manifest.column("path")]] = np.nan
        return out

    results = evaluate_fusion(
        **manifests, n=20, seed=0, predictors={**fakes, "image": no_face_for_sad}, model=trained[0]
    )
    # "sad" has no usable image, so triples only use angry/happy: the constant-angry speech model gets 1/2.
    assert results["speech (single model)"]["accuracy"] == pytest.approx(0.5)


def test_errors_are_clear(
    manifests: dict[str, str], fakes: dict[str, FakePredictor], trained: tuple[FusionModel, dict], tmp_path: Path
) -> None:
    with pytest.raises(ManifestError, match="--image"):
        evaluate_fusion(manifests["speech"], manifests["text"], None, predictors=fakes, model=trained[0])
    only_neutral = _write_csv(tmp_path / "neutral.csv", ["text", "emotion"], [["meh, neutral", "neutral"]])
    with pytest.raises(ManifestError, match="share no emotion label"):
        evaluate_fusion(manifests["speech"], only_neutral, manifests["image"], predictors=fakes, model=trained[0])
    missing_file = _write_csv(tmp_path / "gone.csv", ["path", "emotion"], [["nope.wav", "happy"]])
    with pytest.raises(ManifestError, match="do not exist"):
        evaluate_fusion(missing_file, manifests["text"], manifests["image"], predictors=fakes, model=trained[0])


@pytest.fixture
def fake_modalities(fakes: dict[str, FakePredictor], monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Route the CLI's modality predictors to the fakes; returns monkeypatch for further patches."""
    monkeypatch.setattr(fusion_evaluate, "modality_predictor", lambda m, _detect=None: fakes[m])
    return monkeypatch


def test_cli_prints_and_writes_json(
    manifests: dict[str, str],
    fake_modalities: pytest.MonkeyPatch,
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_modalities.setattr(fusion_evaluate, "get_settings", lambda: Settings(model_dir=model_dir))
    out = tmp_path / "fusion.json"
    argv = ["evaluate", "fusion", "--speech", manifests["speech"], "--text", manifests["text"]]
    code = cli.main([*argv, "--image", manifests["image"], "--n", "21", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "speech+text+image      accuracy=" in printed and "n=21" in printed
    saved = json.loads(out.read_text())
    assert saved["text (single model)"]["accuracy"] == 1.0
    assert load(model_dir).name == "rf-late-fusion"


def test_cli_without_fusion_model_fails_clearly(
    manifests: dict[str, str],
    fake_modalities: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_modalities.setattr(fusion_evaluate, "get_settings", lambda: Settings(model_dir=tmp_path / "none"))
    argv = ["evaluate", "fusion", "--speech", manifests["speech"], "--text", manifests["text"]]
    assert cli.main([*argv, "--image", manifests["image"]]) == 2
    assert "fusion model file not found" in capsys.readouterr().err
