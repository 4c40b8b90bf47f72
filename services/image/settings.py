"""Image service configuration (environment variables, e.g. ``MODEL_DIR``, ``MAX_PIXELS``)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from services.image.pipeline import DetectMode, PrimaryFace
from shared.batching import BatchingSettings

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"


class Settings(BatchingSettings):
    """Face emotion service options."""

    model_dir: Path = Field(default=ARTIFACT_DIR, description="Folder holding face_emotion.pt.")
    max_pixels: int = Field(default=40_000_000, gt=0, description="Largest image (width x height) decoded; else 413.")
    primary_face: PrimaryFace = Field(default="largest", description="Which face gives the image-level label.")
    default_detect: DetectMode = Field(default=DetectMode.AUTO, description="Detect mode when the query omits it.")
    small_image_side: int = Field(
        default=96, ge=1, description="In auto mode an image with both sides <= this is taken whole, as a face crop."
    )
    detection_max_side: int = Field(
        default=1280, ge=64, description="Images are downscaled to this for detection (MODEL_CARD.md: recall vs side)."
    )
    detector_runtime: Literal["onnx", "native"] = Field(
        default="onnx",
        description="How YuNet runs: its weights on onnxruntime (default, faster) or libfacedetection's own C++ code.",
    )
    face_margin: float = Field(default=0.1, ge=0.0, le=1.0, description="Box growth on each side before cropping.")
    tta: bool | None = Field(
        default=None,
        description="Average with the horizontally flipped crop; unset: as the weights file says (else on).",
    )
    max_batch_size: int = Field(
        default=32, ge=1, description="Most images in one /predict/batch request, and face crops in one model call."
    )
    inference_runtime: Literal["onnx", "onnx-int8", "torch"] = Field(
        default="onnx", description="How the CNN runs: onnxruntime fp32 (default), int8, or PyTorch (MODEL_CARD.md)."
    )
    onnx_cache_dir: Path | None = Field(default=None, description="Where the ONNX export is cached (default: temp).")
    apply_calibration: bool = Field(
        default=True, description="Return calibrated probabilities (calibration.json beside the weights)."
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests override with dependency injection or a fresh Settings)."""
    return Settings()
