"""Face ensembles: packed from single weight files, served as one network with the members' mean probabilities."""

from pathlib import Path

import numpy as np
import pytest
import torch

from services.image import model as face_model
from services.image.network import EmotionEnsemble, EmotionNet
from shared.labels import LABELS
from tests.image.test_onnx import fixture_crops
from training.image import ensemble


def _member(path: Path, seed: int, widths: tuple[int, ...] = (8, 8, 8, 8)) -> Path:
    torch.manual_seed(seed)
    network = EmotionNet(widths)
    with torch.no_grad():  # non-trivial BN statistics, so the members differ in eval mode too
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    meta = {"name": "m", "version": str(seed), "widths": list(widths), "labels": list(LABELS)}
    state = {k: v.half() if v.is_floating_point() else v for k, v in network.state_dict().items()}
    torch.save({"state_dict": state, "meta": meta}, path)
    return path


@pytest.mark.parametrize("tta", [True, False])
def test_an_ensemble_predicts_the_mean_of_its_members(tmp_path: Path, tta: bool) -> None:
    paths = [_member(tmp_path / "a.pt", 0), _member(tmp_path / "b.pt", 1, (8, 16, 16, 8))]
    meta = ensemble.pack(paths, tmp_path / "ens" / "face_emotion.pt")
    assert [m["file"] for m in meta["members"]] == ["a.pt", "b.pt"] and meta["version"].endswith("-x2")
    crops = fixture_crops()
    members = [face_model.load(p, tta=tta, calibrated=False).predict(crops) for p in paths]
    loaded = face_model.load(tmp_path / "ens", tta=tta, calibrated=False)
    assert isinstance(loaded.network, EmotionEnsemble) and loaded.name == "face-emotion-resnet-ensemble"
    got = loaded.predict(crops)
    assert not np.allclose(members[0], members[1], atol=1e-3)  # the check below could not pass by accident
    np.testing.assert_allclose(got, np.mean(members, axis=0), atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-9)


def test_the_onnx_runtime_serves_an_ensemble_like_pytorch(tmp_path: Path) -> None:
    paths = [_member(tmp_path / "a.pt", 2), _member(tmp_path / "b.pt", 3), _member(tmp_path / "c.pt", 4)]
    ensemble.pack(paths, tmp_path / "ens.pt")
    crops = fixture_crops()
    expected = face_model.load(tmp_path / "ens.pt", runtime="torch").predict(crops)
    onnx = face_model.load(tmp_path / "ens.pt", runtime="onnx", threads=1, cache_dir=tmp_path / "cache")
    got = onnx.predict(crops)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_output_may_overwrite_a_member(tmp_path: Path) -> None:
    paths = [_member(tmp_path / "a.pt", 5), _member(tmp_path / "b.pt", 6)]
    assert ensemble.main([str(paths[0]), str(paths[1]), "--out", str(paths[0])]) == 0
    assert len(torch.load(paths[0], weights_only=True)["meta"]["members"]) == 2


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    a, b = _member(tmp_path / "a.pt", 7), _member(tmp_path / "b.pt", 8)
    with pytest.raises(ValueError, match="at least two"):
        ensemble.pack([a], tmp_path / "one.pt")
    ensemble.pack([a, b], tmp_path / "ens.pt")
    with pytest.raises(ValueError, match="already an ensemble"):
        ensemble.pack([a, tmp_path / "ens.pt"], tmp_path / "nested.pt")
    state = torch.load(b, weights_only=True)
    state["meta"]["labels"] = list(reversed(LABELS))
    torch.save(state, b)
    with pytest.raises(ValueError, match="trained with labels"):
        ensemble.pack([a, b], tmp_path / "bad.pt")


def test_an_ensemble_module_needs_members() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        EmotionEnsemble([])


def test_flip_tta_follows_the_file_unless_set(tmp_path: Path) -> None:
    paths = [_member(tmp_path / "a.pt", 9), _member(tmp_path / "b.pt", 10)]
    assert ensemble.main([*map(str, paths), "--out", str(tmp_path / "plain.pt"), "--no-tta"]) == 0
    ensemble.pack(paths, tmp_path / "flipped.pt")
    assert face_model.load(tmp_path / "plain.pt").tta is False  # the file's own choice
    assert face_model.load(tmp_path / "plain.pt", tta=True).tta is True  # TTA=true overrides it
    assert face_model.load(tmp_path / "flipped.pt").tta is True
    assert face_model.load(paths[0]).tta is True  # files without the field: on, as before
    crop = np.random.default_rng(2).integers(0, 256, size=(48, 48), dtype=np.uint8)
    plain = face_model.load(tmp_path / "plain.pt", calibrated=False).predict([crop, crop[:, ::-1].copy()])
    assert not np.allclose(plain[0], plain[1], atol=1e-4)  # no mirror averaging really happens
