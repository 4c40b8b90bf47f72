"""Synthetic test images drawn with OpenCV: cartoon-free 'photographic' faces the Haar cascade detects."""

import cv2
import numpy as np


def draw_face(canvas: np.ndarray, cx: int, cy: int, size: int, *, smile: bool = True) -> None:
    """Draw a shaded frontal face of height ``size`` centred at (cx, cy) on a BGR canvas, in place."""
    s = size / 200.0

    def p(x: float, y: float) -> tuple[int, int]:
        return round(cx + x * s), round(cy + y * s)

    def r(v: float) -> int:
        return max(1, round(v * s))

    skin = (120, 160, 215)
    # Hair, then the face oval with a darker rim (shading) and a lighter centre.
    cv2.ellipse(canvas, p(0, -25), (r(85), r(100)), 0, 180, 360, (30, 40, 50), -1)
    cv2.ellipse(canvas, p(0, 0), (r(75), r(100)), 0, 0, 360, (95, 130, 185), -1)
    cv2.ellipse(canvas, p(0, 5), (r(66), r(90)), 0, 0, 360, skin, -1)
    cv2.ellipse(canvas, p(0, 10), (r(45), r(60)), 0, 0, 360, (135, 175, 228), -1)
    # Eyebrows, eye sockets (shadow), eyes with iris.
    for side in (-1, 1):
        cv2.ellipse(canvas, p(side * 30, -40), (r(20), r(5)), 0, 0, 360, (35, 45, 60), -1)
        cv2.ellipse(canvas, p(side * 30, -22), (r(20), r(11)), 0, 0, 360, (80, 105, 150), -1)
        cv2.ellipse(canvas, p(side * 30, -22), (r(14), r(7)), 0, 0, 360, (235, 235, 235), -1)
        cv2.circle(canvas, p(side * 30, -22), r(6), (40, 30, 25), -1)
    # Nose: bridge shadow and nostrils.
    cv2.line(canvas, p(-4, -15), p(-8, 20), (95, 125, 175), r(4))
    cv2.ellipse(canvas, p(0, 25), (r(14), r(7)), 0, 0, 360, (90, 120, 170), -1)
    # Mouth: a smile (or a flat line), dark lips.
    if smile:
        cv2.ellipse(canvas, p(0, 50), (r(30), r(14)), 0, 0, 180, (50, 50, 140), r(7))
    else:
        cv2.line(canvas, p(-25, 55), p(25, 55), (50, 50, 140), r(6))
    canvas[:] = cv2.GaussianBlur(canvas, (0, 0), max(0.8, 1.2 * s))


def face_image(width: int = 320, height: int = 320, *, faces: int = 1, size: int = 200) -> np.ndarray:
    """A BGR uint8 image with ``faces`` faces side by side on a soft grey-blue background."""
    ramp = np.linspace(170, 210, width, dtype=np.float32)
    canvas = np.stack([np.tile(ramp, (height, 1))] * 3, axis=2).astype(np.uint8)
    for i in range(faces):
        cx = round(width * (i + 0.5) / faces)
        draw_face(canvas, cx, height // 2, size)
    return canvas


def landscape_image(width: int = 320, height: int = 240) -> np.ndarray:
    """A face-free BGR scene: sky gradient, a sun and green hills."""
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    sky = np.stack([235 - 60 * y, 200 - 40 * y, 140 - 20 * y], axis=2) * np.ones((1, width, 1), np.float32)
    canvas = sky.astype(np.uint8)
    cv2.circle(canvas, (width // 4, height // 4), height // 10, (120, 230, 250), -1)
    xs = np.arange(width)
    hill = (height * 0.65 + 20 * np.sin(xs / 25.0)).astype(int)
    for x, top in zip(xs, hill, strict=True):
        canvas[top:, x] = (60, 140, 70)
    return canvas
