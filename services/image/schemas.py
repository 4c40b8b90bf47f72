"""Response bodies of the image service."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.labels import Emotion
from shared.schemas import EXAMPLE_PROBABILITIES, ModelInfo

_EXAMPLE_FACE: dict[str, Any] = {
    "box": {"x": 112, "y": 80, "w": 160, "h": 160},
    "confidence": 0.998,
    "landmarks": {
        "eye_left": [152.0, 136.5],
        "eye_right": [231.0, 135.0],
        "nose": [192.5, 178.0],
        "mouth_left": [160.0, 210.5],
        "mouth_right": [224.0, 209.0],
    },
    "label": "happy",
    "probabilities": EXAMPLE_PROBABILITIES,
}


class Box(BaseModel):
    """A face rectangle in pixels of the (EXIF-rotated) image: top-left corner, width, height."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(ge=1)
    h: int = Field(ge=1)


class Face(BaseModel):
    """One detected face and its seven probabilities."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_FACE]})

    box: Box
    confidence: float | None = Field(description="Detector confidence in 0..1; null when the whole image was used.")
    landmarks: dict[str, list[float]] | None = Field(
        default=None,
        description="Five points [x, y] in image pixels (eye_left, eye_right, nose, mouth_left, mouth_right; "
        "left/right as seen in the image) when the detector gives them; the face crop is aligned on them.",
    )
    label: Emotion
    probabilities: dict[Emotion, float]


class ImagePrediction(BaseModel):
    """The image-level answer (its primary face) plus every face; label/probabilities are null with no face."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "label": "happy",
                    "probabilities": EXAMPLE_PROBABILITIES,
                    "model": {"name": "face-emotion-resnet", "version": "2026.11.25"},
                    "faces": [_EXAMPLE_FACE],
                    "detector": "yunet",
                    "message": None,
                    "width": 640,
                    "height": 480,
                },
                {
                    "label": None,
                    "probabilities": None,
                    "model": {"name": "face-emotion-resnet", "version": "2026.11.25"},
                    "faces": [],
                    "detector": "yunet",
                    "message": "No face detected",
                    "width": 640,
                    "height": 480,
                },
            ]
        }
    )

    label: Emotion | None
    probabilities: dict[Emotion, float] | None
    model: ModelInfo
    faces: list[Face]
    detector: str | None = Field(default=None, description="The face detector that ran (null with detect=never).")
    message: str | None = Field(default=None, description='"No face detected" when there is no face.')
    width: int
    height: int


class ImageBatchPrediction(BaseModel):
    """One result per uploaded image, in upload order."""

    results: list[ImagePrediction]
