"""``python -m training.export_onnx`` fills the cache the services read at start."""

from pathlib import Path

import pytest

from services.fusion.app import load as load_fusion
from services.fusion.settings import Settings as FusionSettings
from services.image import model as face_model
from services.image.settings import ARTIFACT_DIR
from services.text import model as text_model
from services.text.settings import Settings as TextSettings
from training import export_onnx


def test_export_fills_the_cache_the_service_then_reuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_onnx.main(["--out", str(tmp_path), "--only", "image"]) == 0
    (written,) = tmp_path.glob("image-onnx-*.onnx")
    assert str(written) in capsys.readouterr().out
    stamp = written.stat().st_mtime_ns
    model = face_model.load(ARTIFACT_DIR, runtime="onnx", cache_dir=tmp_path)
    assert model.session is not None and written.stat().st_mtime_ns == stamp  # reused, not re-exported


def test_the_text_export_is_the_runtime_the_service_is_set_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERENCE_RUNTIME", "onnx-int8")  # not the default: the exporter must follow the setting
    assert export_onnx.main(["--out", str(tmp_path), "--only", "text"]) == 0
    (written,) = tmp_path.glob("text-minilm-*.onnx")
    assert written.name.startswith("text-minilm-onnx-int8-")
    stamp = written.stat().st_mtime_ns
    settings = TextSettings()
    model = text_model.load(settings.model_path, runtime=settings.inference_runtime, cache_dir=tmp_path)
    assert getattr(model, "session", None) is not None and written.stat().st_mtime_ns == stamp  # reused


def test_the_fusion_forest_export_is_what_the_service_then_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export_onnx.main(["--out", str(tmp_path), "--only", "fusion"]) == 0
    (written,) = tmp_path.glob("fusion-forest-*.onnx")
    assert str(written) in capsys.readouterr().out
    stamp = written.stat().st_mtime_ns
    model = load_fusion(FusionSettings(inference_runtime="onnx"), cache_dir=tmp_path)
    assert model.runtime_proba is not None and written.stat().st_mtime_ns == stamp  # reused, not re-exported


def test_an_unknown_modality_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="text, image or fusion"):
        export_onnx.export("speech", tmp_path, "onnx")
