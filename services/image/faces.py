"""Offline face detection with OpenCV's bundled Haar cascade (weights ship inside opencv-python-headless)."""

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: Frontal-face cascade bundled with OpenCV (no download).
CASCADE_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in original-image pixels and the detector's confidence in 0..1 (None if unknown)."""

    x: int
    y: int
    w: int
    h: int
    confidence: float | None = None

    @property
    def area(self) -> int:
        return self.w * self.h


class FaceDetector:
    """Haar-cascade face finder; large images are downscaled for detection and boxes mapped back."""

    def __init__(
        self,
        *,
        max_side: int = 800,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size_fraction: float = 0.05,
        min_size_px: int = 20,
    ) -> None:
        path = Path(cv2.data.haarcascades) / CASCADE_FILE  # type: ignore[attr-defined]
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"could not load the OpenCV face cascade {path}")
        self.max_side = max_side
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_fraction = min_size_fraction
        self.min_size_px = min_size_px

    def _run(self, image: np.ndarray, min_side: int) -> tuple[np.ndarray, np.ndarray]:
        rects, _levels, weights = self.cascade.detectMultiScale3(
            image,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
        return np.asarray(rects).reshape(-1, 4), np.asarray(weights, dtype=np.float64).reshape(-1)

    def detect(self, grey: np.ndarray) -> list[FaceBox]:
        """All faces in an (h, w) uint8 image, largest first, in the input's pixel coordinates."""
        height, width = grey.shape
        scale = min(1.0, self.max_side / max(height, width))
        small = grey
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        min_side = max(self.min_size_px, int(min(small.shape) * self.min_size_fraction))
        if min(small.shape) < min_side:
            return []
        rects, weights = self._run(small, min_side)
        if len(rects) == 0:
            # Second chance on a contrast-equalised copy: helps dark or washed-out photos, hurts some others.
            rects, weights = self._run(cv2.equalizeHist(small), min_side)
        faces = []
        for (x, y, w, h), weight in zip(
            np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1), strict=False
        ):
            # levelWeights is the final-stage score (unbounded, > 0 for accepted windows); squash it to 0..1.
            confidence = 1.0 / (1.0 + math.exp(-float(weight)))
            faces.append(
                FaceBox(
                    x=max(0, round(x / scale)),
                    y=max(0, round(y / scale)),
                    w=min(width, round(w / scale)),
                    h=min(height, round(h / scale)),
                    confidence=round(confidence, 4),
                )
            )
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces
