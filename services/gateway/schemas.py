"""Prediction bodies shared by several route areas (area-only schemas live in routes/*)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.labels import Emotion, Modality
from shared.schemas import EXAMPLE_PROBABILITIES, ModelInfo

#: Which endpoint produced a prediction.
PredictionKind = Literal["speech", "text", "image", "multimodal", "video"]


class ModalityError(BaseModel):
    """Why one modality has no result."""

    status: int = Field(description="HTTP status of the failure (upstream's for its 4xx, else 502/503/504).")
    code: str
    detail: str


class ModalityResult(BaseModel):
    """One modality's outcome inside a prediction."""

    status: Literal["ok", "error"]
    label: Emotion | None = None
    probabilities: dict[Emotion, float] | None = None
    model: ModelInfo | None = None
    message: str | None = Field(default=None, description="E.g. 'No face detected' (then no probabilities).")
    latency_ms: float | None = None
    error: ModalityError | None = None
    details: dict[str, Any] | None = Field(
        default=None,
        description="Service-specific extras of the live response (segments, faces, truncated); not stored.",
    )


class FusedResult(BaseModel):
    """The fusion service's combined prediction."""

    label: Emotion
    probabilities: dict[Emotion, float]
    modalities: list[Modality]
    model: ModelInfo


class InputMetadata(BaseModel):
    """What is kept about the inputs (the inputs themselves are not stored)."""

    text_length: int | None = None
    audio_duration_s: float | None = None
    audio_bytes: int | None = None
    image_width: int | None = None
    image_height: int | None = None
    image_bytes: int | None = None
    video_duration_s: float | None = None
    video_frame_count: int | None = Field(
        default=None, description="Pictures decoded from the video (all, not only the sampled ones)."
    )
    video_bytes: int | None = None
    transcript_length: int | None = Field(default=None, description="Characters of the transcript.")


class TranscriptSegmentOut(BaseModel):
    """One timed transcript segment and, when the text service read it, its emotion."""

    start: float
    end: float
    text: str
    label: Emotion | None = None
    probabilities: dict[Emotion, float] | None = None


class TranscriptOut(BaseModel):
    """The transcript of the audio, which became the text modality."""

    language: str | None = None
    text: str
    segments: list[TranscriptSegmentOut] = Field(default_factory=list, description="Empty in stored history.")
    model: ModelInfo | None = None


class WindowModality(BaseModel):
    """One modality's reading of one window (probabilities only in the live response)."""

    label: Emotion
    probabilities: dict[Emotion, float] | None = None


class TimelineWindow(BaseModel):
    """One window of the recording, each present modality and the fused result over them."""

    start: float
    end: float
    label: Emotion | None = Field(
        default=None, description="Fused label; null when nothing was present or fusion failed."
    )
    probabilities: dict[Emotion, float] | None = None
    modalities: dict[Modality, WindowModality] = Field(default_factory=dict)
    error: str | None = Field(default=None, description="The fusion error code when this window could not be fused.")


class Timeline(BaseModel):
    """The recording on fixed windows; the overall result is the fused windows weighted by duration."""

    window_s: float = Field(description="Window length used (widened when the recording needs more than the cap).")
    frame_rate: float = Field(description="Frames sampled per second (lowered when the video needs more than the cap).")
    windows: list[TimelineWindow]
    missing: list[str] = Field(default_factory=list, description="What the recording lacked, e.g. 'audio track'.")


_EXAMPLE_RESULT: dict[str, Any] = {
    "id": 42,
    "created_at": "2026-11-25T12:00:00Z",
    "kind": "multimodal",
    "label": "happy",
    "probabilities": EXAMPLE_PROBABILITIES,
    "modalities": {
        "text": {
            "status": "ok",
            "label": "happy",
            "probabilities": EXAMPLE_PROBABILITIES,
            "model": {"name": "minilm-l6-emotion", "version": "2026.11.25"},
            "latency_ms": 41.2,
        },
        "speech": {
            "status": "error",
            "latency_ms": 2001.0,
            "error": {"status": 504, "code": "upstream_timeout", "detail": "speech service timed out after 2.0 s"},
        },
    },
    "fused": {
        "label": "happy",
        "probabilities": EXAMPLE_PROBABILITIES,
        "modalities": ["text"],
        "model": {"name": "rf-late-fusion", "version": "2026.11.25"},
    },
    "fusion_error": None,
    "input": {"text_length": 34},
    "latencies_ms": {"text": 41.2, "speech": 2001.0, "fusion": 3.1, "total": 2010.4},
}


class PredictionOut(BaseModel):
    """A prediction: per-modality results, the fused result (multimodal), and the top label.

    ``label``/``probabilities`` are the fused ones for multimodal requests and the modality's
    own for single-modality requests. If the fusion service fails while modalities succeeded,
    ``fused`` is null, ``fusion_error`` says why, and ``label`` is null.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_RESULT]})

    id: int
    created_at: datetime
    kind: PredictionKind
    label: Emotion | None
    probabilities: dict[Emotion, float] | None
    modalities: dict[Modality, ModalityResult]
    fused: FusedResult | None = None
    fusion_error: ModalityError | None = None
    input: InputMetadata
    latencies_ms: dict[str, float]
    transcript: TranscriptOut | None = Field(default=None, description="Video, or audio with transcribe=true.")
    timeline: Timeline | None = Field(default=None, description="Video only: per-window results.")
