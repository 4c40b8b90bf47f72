"""Settings base every service's ``Settings`` extends (values come from the environment)."""

from typing import Final, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Header carrying the shared service-to-service token (sent by the gateway, checked by the services).
INTERNAL_TOKEN_HEADER: Final = "X-Internal-Token"
MIN_INTERNAL_TOKEN_LENGTH: Final = 32


class BaseServiceSettings(BaseSettings):
    """Options common to all five services."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_json: bool = True
    max_upload_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="Largest request body (and so largest file) accepted."
    )
    cors_origins: list[str] = Field(default_factory=list)
    #: Threads for the model runtime (torch / TensorFlow / BLAS); keep <= the container's CPU limit.
    inference_threads: int = Field(default=1, ge=1)
    internal_token: SecretStr | None = Field(
        default=None,
        description=(
            "Shared secret between the gateway and the inference services (X-Internal-Token header); "
            "required when ENVIRONMENT=production, unchecked when unset."
        ),
    )

    @model_validator(mode="after")
    def _require_internal_token_in_production(self) -> "BaseServiceSettings":
        if self.environment == "production":
            token = self.internal_token.get_secret_value() if self.internal_token else ""
            if len(token) < MIN_INTERNAL_TOKEN_LENGTH:
                raise ValueError(
                    f"INTERNAL_TOKEN must be set to a random value of at least {MIN_INTERNAL_TOKEN_LENGTH} "
                    "characters when ENVIRONMENT=production"
                )
        return self
