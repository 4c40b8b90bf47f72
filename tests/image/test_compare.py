"""training.image.compare: weight files scored alone and averaged, through the service's classifier."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from services.image import model as face_model
from services.image.network import EmotionNet
from shared.labels import LABELS
from training.image.compare import crops_per_second, probabilities, scores


def _weights(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    network = EmotionNet((8, 8, 8, 8))
    torch.save({"state_dict": network.state_dict(), "meta": {"widths": [8, 8, 8, 8], "labels": list(LABELS)}}, path)
    return path


def test_probabilities_of_a_weight_file(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 48, 48), dtype=np.uint8)
    p = probabilities(_weights(tmp_path / "a.pt", 0), images, batch=2)
    assert p.shape == (5, 7) and np.allclose(p.sum(axis=1), 1.0)
    mirrored = probabilities(tmp_path / "a.pt", images[:, :, ::-1].copy())
    np.testing.assert_allclose(p, mirrored, atol=1e-5)  # flip TTA: a crop and its mirror score alike


def test_scores() -> None:
    y = np.array([0, 1, 1, 6])
    p = np.eye(7)[[0, 1, 6, 6]]
    s = scores(y, p)
    assert s["accuracy"] == 0.75 and s["disgust_recall"] == 0.5
    assert s["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_crops_per_second_times_the_served_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    real_load = face_model.load

    def spy(path: Path, **kwargs: Any) -> face_model.FaceEmotionModel:
        calls.append(kwargs)
        return real_load(path, **kwargs)

    monkeypatch.setattr(face_model, "load", spy)
    images = np.random.default_rng(1).integers(0, 256, size=(8, 48, 48), dtype=np.uint8)
    rate = crops_per_second(_weights(tmp_path / "a.pt", 0), images, tta=False, batch=4, repeats=2)
    assert np.isfinite(rate) and rate > 0
    assert calls[0]["runtime"] == "onnx" and calls[0]["threads"] == 1 and calls[0]["tta"] is False
