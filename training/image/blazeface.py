"""MediaPipe BlazeFace as a measured detector candidate (not served): the ``.tflite`` models that the
``mediapipe==0.10.14`` wheel ships (Apache-2.0), run with ``ai-edge-litert``; neither is a dependency.

    pip download --no-deps mediapipe==0.10.14 -d /tmp/mp
    unzip -j /tmp/mp/mediapipe-0.10.14-*.whl 'mediapipe/modules/face_detection/*.tflite' -d /tmp/blazeface
    pip install --no-deps --target /tmp/litert ai-edge-litert==2.3.0     # then PYTHONPATH=/tmp/litert

The photo is letterboxed to a square and resized to the model's input (128 px short range, 192 px full
range), as MediaPipe's face detection graph does; anchors and decoding follow its SSD options.
"""

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from services.image.faces import FaceBox

#: model name -> (file, input side, anchor grids as (stride, anchors per cell), score threshold)
MODELS: dict[str, tuple[str, int, tuple[tuple[int, int], ...], float]] = {
    "short": ("face_detection_short_range.tflite", 128, ((8, 2), (16, 6)), 0.5),
    "full": ("face_detection_full_range_sparse.tflite", 192, ((4, 1),), 0.6),
}
NMS_IOU = 0.3


def anchors(side: int, grids: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(n, 2) anchor centres in 0..1, in the model's output order (grid by grid, row-major, anchors per cell)."""
    centres = []
    for stride, per_cell in grids:
        cells = side // stride
        y, x = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(x.ravel() + 0.5) / cells, (y.ravel() + 0.5) / cells], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres)


def _interpreter(path: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415  (optional, measurement only)
    except ImportError:  # TensorFlow's deprecated copy of the same interpreter
        from tensorflow.lite import Interpreter  # type: ignore[import-untyped]  # noqa: PLC0415

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


class BlazeFace:
    """``detect(grey)`` -> face boxes in the photo's pixels (largest first), from one BlazeFace model."""

    def __init__(self, folder: Path, model: str = "full") -> None:
        file, self.side, grids, self.threshold = MODELS[model]
        self.name = f"blazeface-{model}"
        self.interpreter = _interpreter(folder / file)
        self.anchors = anchors(self.side, grids)
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: int(d["shape"][-1]), reverse=True)
        self.regressors, self.scores = outputs[0]["index"], outputs[1]["index"]

    def detect(self, grey: np.ndarray) -> list[FaceBox]:
        height, width = grey.shape
        square = max(height, width)
        pad_x, pad_y = (square - width) // 2, (square - height) // 2
        canvas = np.zeros((square, square), np.uint8)
        canvas[pad_y : pad_y + height, pad_x : pad_x + width] = grey
        small = cv2.resize(canvas, (self.side, self.side), interpolation=cv2.INTER_AREA)
        pixels = np.repeat((small.astype(np.float32) / 127.5 - 1.0)[None, :, :, None], 3, axis=3)
        self.interpreter.set_tensor(self.input, pixels)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.regressors)[0]
        logits = self.interpreter.get_tensor(self.scores)[0, :, 0]
        score = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))
        keep = np.flatnonzero(score >= self.threshold)
        keep = keep[np.argsort(-score[keep], kind="stable")]
        centre = raw[keep, :2] / self.side + self.anchors[keep]
        size = raw[keep, 2:4] / self.side
        boxes = np.column_stack([centre - size / 2, size]) * square - [pad_x, pad_y, 0, 0]
        faces = []
        for i in _nms(boxes, NMS_IOU):
            x, y, w, h = boxes[i]
            x0, y0 = max(0, round(x)), max(0, round(y))
            x1, y1 = min(width, round(x + w)), min(height, round(y + h))
            if x1 > x0 and y1 > y0:
                faces.append(FaceBox(x0, y0, x1 - x0, y1 - y0, confidence=round(float(score[keep[i]]), 4)))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces


def _nms(boxes: np.ndarray, iou: float) -> list[int]:
    from services.image.yunet import nms  # noqa: PLC0415

    return nms(boxes, iou)
