"""Composed test photos: face crops scaled, rotated, darkened and blended into a cluttered scene.

Used to measure detectors and the full photo path (detect -> align -> classify) where no labelled
photos exist: FER2013 faces for the figures, matplotlib's public-domain ``grace_hopper.jpg`` for tests
and the benchmark (no dataset needed).
"""

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class Scene:
    """A greyscale photo and the true square box (x, y, side) and label of every face pasted into it."""

    grey: np.ndarray
    boxes: list[tuple[int, int, int]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    angles: list[float] = field(default_factory=list)
    #: Which of the faces offered to :func:`compose` were placed (some may not fit).
    kept: list[int] = field(default_factory=list)


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A face-free cluttered grey scene: smooth low-frequency texture, a gradient, rectangles and ellipses."""
    coarse = rng.uniform(40, 210, (max(2, height // 90), max(2, width // 90))).astype(np.float32)
    canvas = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    canvas += np.linspace(-30, 30, width, dtype=np.float32)[None, :]
    for _ in range(int(rng.integers(4, 10))):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = float(rng.uniform(20, 235))
        if rng.random() < 0.5:
            w, h = int(rng.integers(20, width // 3)), int(rng.integers(20, height // 3))
            cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, -1)
        else:
            axes = (int(rng.integers(10, width // 6)), int(rng.integers(10, height // 6)))
            cv2.ellipse(canvas, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    canvas += rng.normal(0, 4, canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def paste_face(canvas: np.ndarray, face: np.ndarray, box: tuple[int, int, int], *, angle: float = 0.0) -> None:
    """Blend ``face`` scaled to a (x, y, side) ``box`` and rotated by ``angle`` degrees into ``canvas``, in place."""
    x, y, side = box
    patch = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC if side > face.shape[0] else cv2.INTER_AREA)
    centre = (side / 2, side / 2)
    rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
    patch = cv2.warpAffine(patch, rotation, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # A feathered ellipse covering the face hides the crop's square edge.
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (side // 2, side // 2), (int(side * 0.48), int(side * 0.5)), angle, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, side * 0.04))
    region = canvas[y : y + side, x : x + side].astype(np.float32)
    canvas[y : y + side, x : x + side] = (mask * patch + (1 - mask) * region).astype(np.uint8)


def compose(
    faces: list[np.ndarray],
    labels: list[int],
    rng: np.random.Generator,
    *,
    width: int = 960,
    height: int = 540,
    sides: tuple[int, int] = (48, 200),
    max_angle: float = 0.0,
    darken: bool = False,
) -> Scene:
    """A scene holding as many of ``faces`` as fit without overlap (each 8 px apart at least)."""
    canvas = background(width, height, rng)
    boxes: list[tuple[int, int, int]] = []
    kept_labels: list[int] = []
    angles: list[float] = []
    kept: list[int] = []
    for index, (face, label) in enumerate(zip(faces, labels, strict=True)):
        side = int(rng.integers(sides[0], min(sides[1], height - 2, width - 2) + 1))
        for _attempt in range(30):
            x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            apart = (
                x + side + 8 < bx or bx + bs + 8 < x or y + side + 8 < by or by + bs + 8 < y for bx, by, bs in boxes
            )
            if all(apart):
                angle = float(rng.uniform(-max_angle, max_angle))
                paste_face(canvas, face, (x, y, side), angle=angle)
                boxes.append((x, y, side))
                kept_labels.append(label)
                angles.append(angle)
                kept.append(index)
                break
    if darken:
        # Under-exposed photo: low contrast, dark gamma, sensor noise.
        dark = 255.0 * (canvas / 255.0) ** 2.2 * rng.uniform(0.35, 0.6)
        canvas = np.clip(dark + rng.normal(0, 3, canvas.shape), 0, 255).astype(np.uint8)
    return Scene(canvas, boxes, kept_labels, angles, kept)


def match(
    truth: list[tuple[int, int, int]], found: list[tuple[int, int, int, int]], *, max_offset: float = 0.35
) -> list[int | None]:
    """For each true box, the index of the detection matched to it (greedy by distance) or None.

    A detection matches when its centre is within ``max_offset`` x side of the true centre and its size
    is 0.4-1.6x the true side (FER crops are looser than a detector's face box).
    """
    pairs = []
    for ti, (tx, ty, side) in enumerate(truth):
        for fi, (fx, fy, fw, fh) in enumerate(found):
            distance = np.hypot(fx + fw / 2 - (tx + side / 2), fy + fh / 2 - (ty + side / 2))
            size = np.sqrt(fw * fh) / side
            if distance <= max_offset * side and 0.4 <= size <= 1.6:
                pairs.append((distance / side, ti, fi))
    result: list[int | None] = [None] * len(truth)
    used: set[int] = set()
    for _d, ti, fi in sorted(pairs):
        if result[ti] is None and fi not in used:
            result[ti] = fi
            used.add(fi)
    return result
