"""Gateway request and response bodies (with the examples Swagger UI shows)."""

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from services.gateway.auth import BCRYPT_MAX_BYTES
from shared.labels import Emotion, Modality
from shared.schemas import EXAMPLE_PROBABILITIES, ModelInfo

MIN_PASSWORD_LENGTH = 8
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"
#: Which endpoint produced a prediction.
PredictionKind = Literal["speech", "text", "image", "multimodal"]
DetectMode = Literal["auto", "always", "never"]


class RegisterRequest(BaseModel):
    """A new account."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"username": "alice", "email": "alice@example.com", "password": "correct horse battery"}]
        },
    )

    username: str = Field(
        pattern=USERNAME_PATTERN, description="3-64 characters: letters, digits, '_', '.', '-'; starts alphanumeric."
    )
    email: EmailStr
    password: str = Field(
        min_length=MIN_PASSWORD_LENGTH,
        description=f"At least {MIN_PASSWORD_LENGTH} characters and at most {BCRYPT_MAX_BYTES} bytes (UTF-8).",
    )

    @field_validator("password")
    @classmethod
    def _bcrypt_limit(cls, value: str) -> str:
        if len(value.encode()) > BCRYPT_MAX_BYTES:
            raise ValueError(f"password must be at most {BCRYPT_MAX_BYTES} bytes (UTF-8)")
        if not value.strip():
            raise ValueError("password must not be blank")
        return value

    @field_validator("username", "email")
    @classmethod
    def _lower(cls, value: str) -> str:
        # Stored lower-case: MySQL compares case-insensitively, SQLite does not.
        return value.lower()


class UserPublic(BaseModel):
    """An account as its owner sees it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {"id": 1, "username": "alice", "email": "alice@example.com", "created_at": "2026-11-25T12:00:00Z"}
            ]
        },
    )

    id: int
    username: str
    email: str
    created_at: datetime


class TokenResponse(BaseModel):
    """An OAuth2 bearer token."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"access_token": "eyJhbGciOi...", "token_type": "bearer", "expires_in": 3600}]}
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


class ApiKeyCreate(BaseModel):
    """A new API key for a backend client."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "batch-importer"}]})

    name: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value or re.search(r"[\x00-\x1f]", value):
            raise ValueError("name must be printable and not blank")
        return value


class ApiKeyPublic(BaseModel):
    """An API key without its secret."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "name": "batch-importer",
                    "prefix": "emo_AbCdEfGh",
                    "created_at": "2026-11-25T12:00:00Z",
                    "last_used_at": None,
                    "revoked_at": None,
                }
            ]
        },
    )

    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    """A created API key: ``key`` is shown this once and cannot be retrieved later."""

    key: str = Field(description="Send as the X-API-Key header. Store it now: it is not shown again.")


class TextRequest(BaseModel):
    """Text to classify."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "I can't believe we won the final!"}]}
    )

    text: str = Field(min_length=1, description="The text; longer than MAX_TEXT_CHARS is refused (422).")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be blank")
        return value


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


class PredictionPage(BaseModel):
    """One page of the user's prediction history, newest first."""

    items: list[PredictionOut]
    total: int = Field(description="Matching predictions over all pages.")
    limit: int
    offset: int


class DayCount(BaseModel):
    """Predictions on one UTC day."""

    date: date
    total: int
    by_emotion: dict[str, int]


class Statistics(BaseModel):
    """Counts over the user's history."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "total": 3,
                    "by_emotion": {"happy": 2, "sad": 1},
                    "by_kind": {"text": 2, "multimodal": 1},
                    "by_modality": {"text": 3, "image": 1, "speech": 0},
                    "per_day": [{"date": "2026-11-25", "total": 3, "by_emotion": {"happy": 2, "sad": 1}}],
                }
            ]
        }
    )

    total: int
    by_emotion: dict[str, int] = Field(description="Per label; 'none' counts predictions without a label.")
    by_kind: dict[str, int] = Field(description="Per endpoint: speech, text, image, multimodal.")
    by_modality: dict[str, int] = Field(description="Predictions whose input included each modality.")
    per_day: list[DayCount]


class ServiceHealth(BaseModel):
    """A downstream service's readiness as seen from the gateway."""

    status: Literal["ready", "not_ready", "unreachable"]
    url: str
    detail: str | None = None


class ServicesHealth(BaseModel):
    """Readiness of every downstream service."""

    services: dict[str, ServiceHealth]
