"""Text service configuration, read from the environment (or ``.env``)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from shared.batching import BatchingSettings

#: The committed artefacts: ``minilm/`` (default) and ``bilstm/``.
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


class Settings(BatchingSettings):
    """Options of the text service."""

    model_dir: Path = Field(default=ARTIFACTS_DIR, description="Folder holding one sub-folder per model kind.")
    model_kind: Literal["minilm", "bilstm"] = Field(default="minilm", description="Which model to serve.")
    max_text_chars: int = Field(default=5000, gt=0, description="Longest text accepted, in characters.")
    max_batch_size: int = Field(default=32, gt=0, description="Most texts in one /predict/batch call or model call.")
    inference_runtime: Literal["onnx", "onnx-int8", "torch"] = Field(
        default="onnx", description="How MiniLM runs: onnxruntime fp32 (default), int8, or PyTorch (MODEL_CARD.md)."
    )
    onnx_cache_dir: Path | None = Field(default=None, description="Where the ONNX export is cached (default: temp).")
    apply_calibration: bool = Field(
        default=True, description="Return calibrated probabilities (the model folder's calibration.json)."
    )

    @property
    def model_path(self) -> Path:
        """The artefact folder of the selected model."""
        return self.model_dir / self.model_kind


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` and pass them to ``create_app``)."""
    return Settings()
