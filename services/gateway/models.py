"""ORM models: users, revoked tokens, API keys and stored predictions.

Types are chosen to work on both SQLite and MySQL/MariaDB: bounded ``String`` lengths,
``JSON``, and UTC datetimes with microseconds (MySQL's DATETIME defaults to whole seconds).
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


#: Scopes of API keys created before scopes existed: everything they could do then, but key management.
DEFAULT_KEY_SCOPES = "predict history:read history:write"


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the constraint naming convention alembic relies on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class User(Base):
    """An account that can log in and owns predictions and API keys."""

    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Carried by every access token as ``ver``; "log out everywhere" increments it.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    api_keys: Mapped[list["ApiKey"]] = relationship(back_populates="user", cascade="all, delete-orphan")


class RevokedToken(Base):
    """A JWT refused before its expiry (logout); rows past ``expires_at`` can be purged."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A long-lived credential for backend clients; only its SHA-256 is stored."""

    __tablename__ = "api_keys"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Space-separated scopes (see ``auth.API_KEY_SCOPES``).
    scopes: Mapped[str] = mapped_column(String(100), default=DEFAULT_KEY_SCOPES, server_default=DEFAULT_KEY_SCOPES)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(back_populates="api_keys")


class Prediction(Base):
    """One prediction request's outcome. Raw inputs are never stored, only their metadata."""

    __tablename__ = "predictions"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: Which endpoint: speech, text, image or multimodal.
    kind: Mapped[str] = mapped_column(String(16), index=True)
    has_speech: Mapped[bool] = mapped_column(Boolean, default=False)
    has_text: Mapped[bool] = mapped_column(Boolean, default=False)
    has_image: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Fused label (multimodal) or the modality's label; null when nothing could be predicted.
    label: Mapped[str | None] = mapped_column(String(16), index=True, default=None)
    probabilities: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: Per modality: status, label, probabilities, model, latency_ms, error, message.
    modality_results: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fused: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    fusion_error: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: {"text": "name@version", "fusion": ...}
    model_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: {"text": ms, ..., "fusion": ms, "total": ms}
    latencies_ms: Mapped[dict[str, Any]] = mapped_column(default=dict)
    text_length: Mapped[int | None] = mapped_column(Integer, default=None)
    audio_duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    audio_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    image_width: Mapped[int | None] = mapped_column(Integer, default=None)
    image_height: Mapped[int | None] = mapped_column(Integer, default=None)
    image_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    video_duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    video_frame_count: Mapped[int | None] = mapped_column(Integer, default=None)
    video_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    #: The transcript that became the text modality (video, or audio with ``transcribe=true``).
    transcript: Mapped[str | None] = mapped_column(Text, default=None)
    transcript_length: Mapped[int | None] = mapped_column(Integer, default=None)
    #: Video: window length, frame rate, what was missing and per-window labels (no probabilities).
    timeline: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
