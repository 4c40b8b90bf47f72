"""Settings base every service's ``Settings`` extends (values come from the environment)."""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BaseServiceSettings(BaseSettings):
    """Options common to all five services."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_json: bool = True
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, gt=0, description="Largest request body accepted.")
    cors_origins: list[str] = Field(default_factory=list)
    #: Threads for the model runtime (torch / TensorFlow / BLAS); keep <= the container's CPU limit.
    inference_threads: int = Field(default=1, ge=1)
