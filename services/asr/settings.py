"""Transcription service settings (environment variables, e.g. ``ASR_LANGUAGE``, ``MAX_DURATION_S``)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field

from shared.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    """Options of the transcription service."""

    #: Where the verified ``model.bin`` is assembled; unset = ``shared.weights.default_cache_dir()``.
    weights_cache_dir: Path | None = Field(default=None, description="Cache folder for the assembled weights.")
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, gt=0, description="Largest request body accepted.")
    max_duration_s: float = Field(default=600.0, gt=0, description="Longest audio accepted, in seconds (else 413).")
    asr_language: str | None = Field(
        default="en",
        description="Language to transcribe (ISO 639-1); empty = detect it per clip (less reliable on short clips).",
    )
    asr_beam_size: int = Field(default=1, ge=1, le=10, description="1 = greedy decoding (fastest on a CPU).")
    asr_compute_type: str = Field(default="int8", description="CTranslate2 compute type on the CPU.")
    asr_max_segment_s: float = Field(default=8.0, gt=0, description="Longer transcript segments are cut at words.")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own)."""
    return Settings()
