"""Gateway settings, read from the environment (see ``.env``)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from shared.labels import Modality
from shared.settings import BaseServiceSettings

#: Repository root: alembic.ini and migrations/ live there.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: The development secret; refused when ENVIRONMENT=production.
DEV_SECRET_KEY = "dev-only-insecure-secret-change-me-0123456789"
MIN_PRODUCTION_SECRET_LENGTH = 32


class Settings(BaseServiceSettings):
    """Gateway options: database, auth, downstream services, rate limits, upload checks."""

    database_url: str = Field(
        default="sqlite+aiosqlite:///./var/emotion.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///... or mysql+asyncmy://user:pw@host/db",
    )
    alembic_config: Path = PROJECT_ROOT / "alembic.ini"
    #: Run ``alembic upgrade head`` at startup instead of refusing an un-migrated database.
    auto_migrate: bool = False
    #: How long startup waits for the database to answer before giving up.
    db_connect_timeout_s: float = Field(default=30.0, ge=0)
    #: How often the readiness watcher re-checks the database.
    db_check_interval_s: float = Field(default=10.0, gt=0)
    #: Connections kept open per process, and how many more a burst may open (MySQL/MariaDB only).
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    #: How long a request waits for a free connection before failing.
    db_pool_timeout_s: float = Field(default=10.0, gt=0)

    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    access_token_expire_minutes: int = Field(default=60, ge=1)
    #: bcrypt cost factor (tests lower it for speed; 12 is about 0.25 s per hash).
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)

    speech_url: str = "http://127.0.0.1:8001"
    text_url: str = "http://127.0.0.1:8002"
    image_url: str = "http://127.0.0.1:8003"
    fusion_url: str = "http://127.0.0.1:8004"
    asr_url: str = "http://127.0.0.1:8005"
    speech_timeout_s: float = Field(default=30.0, gt=0)
    text_timeout_s: float = Field(default=10.0, gt=0)
    image_timeout_s: float = Field(default=15.0, gt=0)
    fusion_timeout_s: float = Field(default=5.0, gt=0)
    #: Whisper on one core runs at 0.2-1x real time (quiet vs busy CPU): ten minutes of audio can take minutes.
    asr_timeout_s: float = Field(default=600.0, gt=0)
    connect_timeout_s: float = Field(default=2.0, gt=0)
    #: Pooled connections to the services: at most this many, each carrying at most this many
    #: requests and replaced after this age, so the replicas behind a Service (or `docker compose
    #: --scale`), new ones included, share the load evenly (see shared/http.py).
    upstream_max_connections: int = Field(default=100, ge=1)
    upstream_connection_max_requests: int = Field(default=16, ge=1)
    upstream_connection_max_age_s: float = Field(default=10.0, gt=0)
    health_timeout_s: float = Field(default=2.0, gt=0)

    #: slowapi/limits rate strings ("60/minute", "5/second;100/hour").
    rate_limit_enabled: bool = True
    rate_limit_user: str = "60/minute"
    rate_limit_ip: str = "120/minute"
    rate_limit_auth: str = "10/minute"
    #: memory:// when unset; e.g. redis://127.0.0.1:6379/0 to share limits between replicas.
    rate_limit_storage_uri: str | None = None
    rate_limit_key_prefix: str = "emotion-gateway"

    max_text_chars: int = Field(default=5000, ge=1)
    #: Per-file limits; default to MAX_UPLOAD_BYTES (the whole-request limit).
    max_audio_bytes: int | None = Field(default=None, gt=0)
    max_image_bytes: int | None = Field(default=None, gt=0)
    export_max_rows: int = Field(default=100_000, ge=1)
    #: JSON bodies are checked before parsing: size while streaming (413), nesting and value count (422).
    max_json_bytes: int = Field(default=128 * 1024, ge=1024, description="Largest JSON request body.")
    max_json_depth: int = Field(default=32, ge=2, description="Deepest nesting of arrays/objects in a JSON body.")
    max_json_items: int = Field(default=256, ge=8, description="Most values (members + elements) in a JSON body.")

    #: Video input (POST /predict/video). The body limit (MAX_UPLOAD_BYTES) still applies first.
    max_video_bytes: int | None = Field(default=None, gt=0, description="Largest video file; default MAX_UPLOAD_BYTES.")
    max_video_duration_s: float = Field(default=600.0, gt=0, description="Longest video, from its header (else 413).")
    video_frame_rate: float = Field(
        default=2.0, gt=0, le=30, description="Frames per second sent to the image service."
    )
    video_max_frames: int = Field(default=1200, ge=1, description="Most frames sampled from one video (rate lowered).")
    video_window_s: float = Field(default=2.0, gt=0, description="Timeline window length, in seconds.")
    video_max_windows: int = Field(default=300, ge=1, description="Most timeline windows (windows widened).")
    video_image_batch: int = Field(default=16, ge=1, le=32, description="Frames per image-service batch call.")
    video_concurrency: int = Field(default=4, ge=1, description="Calls in flight per service for one video.")

    @model_validator(mode="after")
    def _refuse_dev_secret_in_production(self) -> "Settings":
        if self.environment == "production":
            secret = self.secret_key.get_secret_value()
            if secret == DEV_SECRET_KEY or len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
                raise ValueError(
                    "SECRET_KEY must be set to a random value of at least "
                    f"{MIN_PRODUCTION_SECRET_LENGTH} characters when ENVIRONMENT=production"
                )
        return self

    def service_url(self, service: Modality | str) -> str:
        """Base URL of a downstream service (speech, text, image or fusion)."""
        return str(getattr(self, f"{service}_url")).rstrip("/")

    def service_timeout(self, service: Modality | str) -> float:
        """Total time allowed for one call to a downstream service."""
        return float(getattr(self, f"{service}_timeout_s"))

    @property
    def audio_limit(self) -> int:
        """Largest audio file accepted."""
        return self.max_audio_bytes or self.max_upload_bytes

    @property
    def video_limit(self) -> int:
        """Largest video file accepted."""
        return self.max_video_bytes or self.max_upload_bytes

    @property
    def image_limit(self) -> int:
        """Largest image file accepted."""
        return self.max_image_bytes or self.max_upload_bytes


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests pass their own to ``create_app``)."""
    return Settings()
