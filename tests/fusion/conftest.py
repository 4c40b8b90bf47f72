"""Fixtures: a small forest trained on synthetic modality probabilities (a few trees, seconds)."""

from pathlib import Path

import numpy as np
import pytest

from services.fusion.model import FusionModel
from training.fusion.data import ModalityItems, synthetic_items
from training.fusion.train import train_and_evaluate

SMALL_FOREST = {"n_estimators": 8, "max_leaf_nodes": 64, "min_samples_leaf": 5, "max_features": 2}


def synthetic_parts(seed: int = 0) -> dict[str, ModalityItems]:
    """Speech weak (12 actors: 09-16 as if out of fold, 17-20 unseen), text and image stronger, as in the real data."""
    rng = np.random.default_rng(seed)
    speech = synthetic_items("speech", 144, 1.5, rng, n_groups=12)
    speech = ModalityItems(
        "speech", speech.probs, speech.labels, speech.ids, np.array([f"ravdess_{9 + i % 12:02d}" for i in range(144)])
    )
    return {
        "speech": speech,
        "text": synthetic_items("text", 400, 2.2, rng, n_groups=400),
        "image": synthetic_items("image", 400, 2.5, rng, n_groups=400),
    }


@pytest.fixture(scope="session")
def trained() -> tuple[FusionModel, dict]:
    model, metrics = train_and_evaluate(
        synthetic_parts(), seed=0, n_fit=1400, n_test=700, forest_params=SMALL_FOREST, jitter_sigma=1.0
    )
    return model, metrics


@pytest.fixture(scope="session")
def model_dir(trained: tuple[FusionModel, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fusion_model")
    trained[0].save(directory / "fusion_forest.joblib")
    return directory
