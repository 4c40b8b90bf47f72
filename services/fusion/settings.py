"""Configuration of the fusion service (environment variables, e.g. ``MODEL_DIR``)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from services.fusion.model import MODEL_FILE
from shared.batching import BatchingSettings

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "artifacts"


class Settings(BatchingSettings):
    """Fusion service settings."""

    model_dir: Path = Field(default=DEFAULT_MODEL_DIR, description="Folder holding the fusion forest artefact.")
    model_file: str = Field(default=MODEL_FILE, description="File name of the artefact inside model_dir.")
    inference_runtime: Literal["onnx", "sklearn"] = Field(
        default="onnx",
        description=(
            "How the forest runs: converted once to ONNX and served by onnxruntime (default; checked against"
            " scikit-learn at load, which serves instead if they differ or the conversion fails), or scikit-learn."
        ),
    )
    correlation_guard: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description=(
            "Overrides the model's correlation guard c (CORRELATION_GUARD): multimodal outputs are tempered by "
            "1 + c * (k - 1) for k modalities. 0 trusts modalities as independent evidence, 1 treats them as one; "
            "unset keeps the value fitted with the model (see the fusion model card)."
        ),
    )

    @property
    def model_path(self) -> Path:
        return self.model_dir / self.model_file


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own :class:`Settings` instead)."""
    return Settings()
