"""Speech service settings (environment variables, e.g. ``MODEL_DIR``, ``MAX_DURATION_S``)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from shared.batching import BatchingSettings

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


class Settings(BatchingSettings):
    """Options of the speech service."""

    model_dir: Path = Field(default=ARTIFACTS_DIR, description="Folder holding the .keras model and its JSON.")
    apply_calibration: bool = Field(
        default=True, description="Return calibrated probabilities (the model folder's calibration.json)."
    )
    encoder_runtime: Literal["onnx", "numpy"] = Field(
        default="onnx",
        description="Where the Whisper encoder runs: onnxruntime, or the NumPy reference (same weights, same states).",
    )
    max_duration_s: float = Field(default=600.0, gt=0, description="Longest clip accepted, in seconds (else 413).")
    max_batch_size: int = Field(
        default=32, ge=1, description="Most files in one /predict/batch request, and windows in one model call."
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests override the dependency or build their own)."""
    return Settings()
