"""Pydantic request/response schemas that cross service boundaries."""

import math
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.labels import LABELS, Emotion, Modality

#: Tolerance on the sum of a probability vector.
PROBABILITY_SUM_TOLERANCE = 1e-3


def _check_probabilities(value: dict[Emotion, float]) -> dict[Emotion, float]:
    missing = [label for label in LABELS if label not in value]
    if missing:
        raise ValueError(f"probabilities must cover all seven labels; missing: {', '.join(missing)}")
    for label, p in value.items():
        if not math.isfinite(p) or p < 0:
            raise ValueError(f"probability for {label} must be a finite non-negative number")
    total = sum(value.values())
    if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
        raise ValueError(f"probabilities must sum to 1 (got {total:.6f})")
    # Canonical key order, whatever order the client sent.
    return {Emotion(label): float(value[Emotion(label)]) for label in LABELS}


#: Seven probabilities keyed by label, validated to be non-negative and to sum to 1.
Probabilities = Annotated[dict[Emotion, float], AfterValidator(_check_probabilities)]

EXAMPLE_PROBABILITIES: dict[str, Any] = {
    "angry": 0.02,
    "disgust": 0.01,
    "fear": 0.02,
    "happy": 0.88,
    "sad": 0.02,
    "surprise": 0.03,
    "neutral": 0.02,
}


def probabilities_from_vector(vector: Sequence[float]) -> dict[Emotion, float]:
    """Map a length-7 vector in canonical order to a label-keyed dict."""
    if len(vector) != len(LABELS):
        raise ValueError(f"expected {len(LABELS)} probabilities, got {len(vector)}")
    return {Emotion(label): float(p) for label, p in zip(LABELS, vector, strict=True)}


def vector_from_probabilities(probabilities: dict[Emotion, float]) -> list[float]:
    """Inverse of :func:`probabilities_from_vector`."""
    return [float(probabilities[Emotion(label)]) for label in LABELS]


class ModelInfo(BaseModel):
    """Which model produced a prediction."""

    name: str = Field(examples=["minilm-l6-emotion"])
    version: str = Field(examples=["2026.11.25"])


class Prediction(BaseModel):
    """One input's result from an inference service: seven probabilities and the top label."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"label": "happy", "probabilities": EXAMPLE_PROBABILITIES}]}
    )

    label: Emotion
    probabilities: dict[Emotion, float]
    model: ModelInfo


class ErrorResponse(BaseModel):
    """The one JSON error shape every service returns for 4xx/5xx."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"detail": "Model is not loaded yet", "code": "model_not_ready", "request_id": "3f2c9a"}]
        }
    )

    detail: str = Field(description="Human-readable message.")
    code: str = Field(description="Stable machine-readable error code.")
    request_id: str | None = Field(default=None, description="Correlates with the server logs.")
    errors: list[dict[str, Any]] | None = Field(default=None, description="Field errors, for validation failures.")


class FuseRequest(BaseModel):
    """Per-modality probability vectors to fuse; any non-empty subset."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": EXAMPLE_PROBABILITIES, "image": EXAMPLE_PROBABILITIES}]},
    )

    speech: Probabilities | None = None
    text: Probabilities | None = None
    image: Probabilities | None = None

    def present(self) -> dict[Modality, dict[Emotion, float]]:
        """The modalities that were given, in canonical order."""
        given = {Modality.SPEECH: self.speech, Modality.TEXT: self.text, Modality.IMAGE: self.image}
        return {m: p for m, p in given.items() if p is not None}


class FuseResponse(BaseModel):
    """The fused prediction and which modalities fed it."""

    label: Emotion
    probabilities: dict[Emotion, float]
    modalities: list[Modality]
    model: ModelInfo


class TranscriptSegment(BaseModel):
    """One timed stretch of a transcript."""

    start: float = Field(ge=0, description="Start, in seconds from the beginning of the audio.", examples=[0.0])
    end: float = Field(ge=0, description="End, in seconds.", examples=[2.0])
    text: str = Field(examples=["Kids are talking by the door."])


class Transcription(BaseModel):
    """What the transcription service answers: the language, timed segments and the model."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "language": "en",
                    "duration_s": 2.18,
                    "text": "Kids are talking by the door.",
                    "segments": [{"start": 0.0, "end": 2.0, "text": "Kids are talking by the door."}],
                    "model": {"name": "whisper-base-ct2", "version": "1.0.0-int8"},
                }
            ]
        }
    )

    language: str = Field(description="ISO 639-1 code of the spoken language (given or detected).")
    duration_s: float = Field(ge=0, description="Length of the decoded audio, in seconds.")
    text: str = Field(description="The segments' text joined by spaces; empty when nothing was said.")
    segments: list[TranscriptSegment]
    model: ModelInfo
