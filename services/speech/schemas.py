"""Response bodies of the speech service."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import EXAMPLE_PROBABILITIES, Prediction

EXAMPLE_SEGMENT: dict[str, Any] = {"start": 0.4, "end": 3.4, "label": "happy", "probabilities": EXAMPLE_PROBABILITIES}


class SpeechSegment(BaseModel):
    """One window of the clip and its own prediction."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_SEGMENT]})

    start: float = Field(description="Start of the window, in seconds from the beginning of the clip.")
    end: float = Field(description="End of the window, in seconds.")
    label: str = Field(description="Most probable emotion in this window.")
    probabilities: dict[str, float]


class SpeechPrediction(Prediction):
    """The clip's overall prediction (duration-weighted over speech windows) and its timeline."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "label": "happy",
                    "probabilities": EXAMPLE_PROBABILITIES,
                    "model": {"name": "speech-emotion-dnn", "version": "2026.11.25"},
                    "duration_s": 3.6,
                    "segments": [EXAMPLE_SEGMENT],
                }
            ]
        }
    )

    duration_s: float = Field(description="Length of the decoded clip, in seconds.")
    segments: list[SpeechSegment] = Field(description="Speech windows in time order; silence is skipped.")


class SpeechBatchResponse(BaseModel):
    """One result per uploaded file, in upload order."""

    results: list[SpeechPrediction]
