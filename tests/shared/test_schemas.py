"""The probability contract every service and the fusion input rely on."""

import math

import pytest
from pydantic import ValidationError

from shared.labels import LABELS, Emotion
from shared.schemas import (
    EXAMPLE_PROBABILITIES,
    FuseRequest,
    probabilities_from_vector,
    vector_from_probabilities,
)


def test_labels_are_in_canonical_fer2013_order() -> None:
    assert LABELS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_vector_round_trip() -> None:
    vector = [0.1, 0.0, 0.2, 0.3, 0.1, 0.2, 0.1]
    probs = probabilities_from_vector(vector)
    assert list(probs) == list(Emotion)
    assert vector_from_probabilities(probs) == vector
    with pytest.raises(ValueError, match="expected 7"):
        probabilities_from_vector([0.5, 0.5])


def test_fuse_request_reorders_keys_and_reports_present_modalities() -> None:
    shuffled = dict(reversed(list(EXAMPLE_PROBABILITIES.items())))
    request = FuseRequest.model_validate({"image": shuffled, "text": EXAMPLE_PROBABILITIES})
    assert [m.value for m in request.present()] == ["text", "image"]
    assert list(request.image or {}) == list(Emotion)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"happy": None}, "missing: happy"),
        ({"happy": -0.1, "neutral": 0.22 + 0.98}, "non-negative"),
        ({"happy": math.nan}, "finite"),
        ({"happy": 0.5}, "sum to 1"),
    ],
)
def test_invalid_probability_vectors_are_rejected(change: dict[str, float | None], message: str) -> None:
    probs: dict[str, float] = dict(EXAMPLE_PROBABILITIES)
    for key, value in change.items():
        if value is None:
            del probs[key]
        else:
            probs[key] = value
    with pytest.raises(ValidationError, match=message):
        FuseRequest.model_validate({"text": probs})


def test_unknown_modality_is_rejected() -> None:
    with pytest.raises(ValidationError, match="audio"):
        FuseRequest.model_validate({"audio": EXAMPLE_PROBABILITIES})
