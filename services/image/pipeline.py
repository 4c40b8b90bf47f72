"""Image -> faces -> emotions: the one code path shared by the service and ``emotion evaluate image``."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

import numpy as np

from services.image.decoding import DecodedImage
from services.image.errors import NO_FACE_MESSAGE
from services.image.faces import LANDMARK_NAMES, FaceBox, FaceDetector, aligned_crop
from shared.labels import LABELS

PrimaryFace = Literal["largest", "most_confident"]


class DetectMode(StrEnum):
    """auto: detect, but a small image (<= small_image_side) is a face crop; always: detect only; never: whole image."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class Classifier(Protocol):
    """Anything that maps greyscale face crops to (n, 7) probabilities (our model, or a baseline)."""

    def predict(self, batch: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class PipelineConfig:
    """Detection policy knobs (mirrors the service settings)."""

    primary_face: PrimaryFace = "largest"
    small_image_side: int = 96
    face_margin: float = 0.1
    #: Rotate and scale each face onto the FER2013 landmark template when the detector gives landmarks.
    align: bool = True


@dataclass(frozen=True)
class FaceResult:
    """One face: where it is, how sure the detector was, and its seven probabilities."""

    box: FaceBox
    probabilities: np.ndarray

    @property
    def label(self) -> str:
        return LABELS[int(np.argmax(self.probabilities))]


@dataclass(frozen=True)
class ImageResult:
    """All faces of one image, which of them is the image-level answer, and a message when there is none."""

    width: int
    height: int
    faces: list[FaceResult]
    primary: int | None
    message: str | None
    #: The detector that ran (None with detect=never).
    detector: str | None = None

    @property
    def probabilities(self) -> np.ndarray | None:
        return None if self.primary is None else self.faces[self.primary].probabilities

    def to_dict(self) -> dict[str, Any]:
        """The service's JSON body, minus the ``model`` field."""
        faces = [
            {
                "box": {"x": f.box.x, "y": f.box.y, "w": f.box.w, "h": f.box.h},
                "confidence": f.box.confidence,
                "landmarks": _landmarks(f.box),
                "label": f.label,
                "probabilities": _as_dict(f.probabilities),
            }
            for f in self.faces
        ]
        primary = None if self.primary is None else faces[self.primary]
        return {
            "label": primary["label"] if primary else None,
            "probabilities": primary["probabilities"] if primary else None,
            "faces": faces,
            "detector": self.detector,
            "message": self.message,
            "width": self.width,
            "height": self.height,
        }


def _landmarks(box: FaceBox) -> dict[str, list[float]] | None:
    if box.landmarks is None:
        return None
    return {name: [x, y] for name, (x, y) in zip(LANDMARK_NAMES, box.landmarks, strict=True)}


def _as_dict(probabilities: np.ndarray) -> dict[str, float]:
    return {label: float(p) for label, p in zip(LABELS, probabilities, strict=True)}


def whole_image_box(image: DecodedImage) -> FaceBox:
    """The whole image as one face (no detector confidence)."""
    return FaceBox(x=0, y=0, w=image.width, h=image.height, confidence=None)


def locate_faces(
    image: DecodedImage, *, detector: FaceDetector, mode: DetectMode, config: PipelineConfig
) -> list[FaceBox]:
    """Face boxes for ``mode``; ``auto`` takes a small image (both sides <= small_image_side) whole, as a face crop.

    Searching such a crop for a face and re-aligning it upsampled costs accuracy: FER2013 public_test 0.6760
    that way vs 0.6916 taken whole (MODEL_CARD.md).
    """
    if mode is DetectMode.NEVER or (mode is DetectMode.AUTO and _is_small(image, config)):
        return [whole_image_box(image)]
    return detector.detect(image.grey)


def _is_small(image: DecodedImage, config: PipelineConfig) -> bool:
    return image.width <= config.small_image_side and image.height <= config.small_image_side


def crop_face(grey: np.ndarray, box: FaceBox, margin: float) -> np.ndarray:
    """The box grown by ``margin`` of its size on each side, clipped to the image."""
    height, width = grey.shape
    dx, dy = round(box.w * margin), round(box.h * margin)
    x0, y0 = max(0, box.x - dx), max(0, box.y - dy)
    x1, y1 = min(width, box.x + box.w + dx), min(height, box.y + box.h + dy)
    return grey[y0:y1, x0:x1]


def _primary(faces: list[FaceResult], policy: PrimaryFace) -> int | None:
    if not faces:
        return None
    if policy == "most_confident":
        return max(range(len(faces)), key=lambda i: (faces[i].box.confidence or 0.0, faces[i].box.area))
    return max(range(len(faces)), key=lambda i: faces[i].box.area)


def locate_and_crop(
    image: DecodedImage, *, detector: FaceDetector, mode: DetectMode, config: PipelineConfig
) -> tuple[list[FaceBox], list[np.ndarray]]:
    """The face boxes of one image and their crops (the classifier's input), in the same order.

    A face with landmarks is aligned onto the training template; otherwise its box is cropped with the margin.
    """
    boxes = locate_faces(image, detector=detector, mode=mode, config=config)
    return boxes, [face_crop(image, box, config) for box in boxes]


def face_crop(image: DecodedImage, box: FaceBox, config: PipelineConfig) -> np.ndarray:
    """The classifier's input for one face: aligned by its landmarks, else the box (+ margin), else the image."""
    if box.landmarks is not None and config.align:
        return aligned_crop(image.grey, box.landmarks)
    return crop_face(image.grey, box, 0.0 if box == whole_image_box(image) else config.face_margin)


def assemble(
    image: DecodedImage,
    boxes: list[FaceBox],
    probabilities: np.ndarray,
    config: PipelineConfig,
    *,
    detector: str | None = None,
) -> ImageResult:
    """One image's result from its boxes, their (len(boxes), 7) probabilities and the detector's name."""
    faces = [FaceResult(box, probabilities[i]) for i, box in enumerate(boxes)]
    primary = _primary(faces, config.primary_face)
    message = None if faces else NO_FACE_MESSAGE
    return ImageResult(image.width, image.height, faces, primary, message, detector)


def detector_name(detector: FaceDetector, mode: DetectMode, image: DecodedImage, config: PipelineConfig) -> str | None:
    """The name reported in a response: the detector's, unless it did not run (detect=never, small image in auto)."""
    if mode is DetectMode.NEVER or (mode is DetectMode.AUTO and _is_small(image, config)):
        return None
    return detector.name


def analyze_batch(
    images: Sequence[DecodedImage],
    *,
    model: Classifier,
    detector: FaceDetector,
    mode: DetectMode = DetectMode.AUTO,
    config: PipelineConfig = PipelineConfig(),
) -> list[ImageResult]:
    """Detect every face in every image, classify all crops in one model call, and assemble the results."""
    located = [locate_and_crop(image, detector=detector, mode=mode, config=config) for image in images]
    crops = [crop for _, image_crops in located for crop in image_crops]
    probabilities = model.predict(crops) if crops else np.zeros((0, len(LABELS)))
    results: list[ImageResult] = []
    offset = 0
    for image, (boxes, _) in zip(images, located, strict=True):
        rows = probabilities[offset : offset + len(boxes)]
        results.append(assemble(image, boxes, rows, config, detector=detector_name(detector, mode, image, config)))
        offset += len(boxes)
    return results
