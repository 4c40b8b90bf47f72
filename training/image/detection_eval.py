"""Face detectors and the full photo path on composed photos of FER2013 public_test faces.

    python -m training.image.detection_eval --scenes 60 --json /tmp/face/detection.json \
        [--yunet-sides 800 1280] [--detectors yunet yunet-native haar dlib-hog blazeface] [--blazeface DIR]

Per condition (upright, rotated up to 30 deg, dark, small faces) and detector (YuNet at each max side,
``yunet-native`` = libfacedetection's own forward pass at the first side, haar, dlib HOG if installed, BlazeFace
short/full range if ``--blazeface`` names its .tflite folder): recall, false detections per photo, ms per photo.
Then the photo path with YuNet (``--path-side``): accuracy of the faces' emotion through detection + aligned crop
(and + box crop) against the same faces' 48x48 crops (``--path-scenes 0`` skips it).
"""

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from services.image import model as face_model
from services.image.decoding import DecodedImage
from services.image.faces import FaceBox, HaarDetector, YuNetDetector
from services.image.pipeline import PipelineConfig, face_crop
from services.image.settings import ARTIFACT_DIR
from training.image.data import DEFAULT_CACHE, DEFAULT_ROOT, load_split
from training.image.scenes import Scene, compose, match

CONDITIONS: dict[str, dict[str, Any]] = {
    "upright": {},
    "rotated": {"max_angle": 30.0},
    "dark": {"darken": True},
    "small": {"sides": (28, 56)},
}

Detect = Callable[[np.ndarray], list[FaceBox]]


def dlib_hog(max_side: int = 800) -> Detect | None:
    """dlib's HOG frontal-face detector (``dlib-bin``), upsampled once, or None when dlib is absent."""
    try:
        import dlib  # type: ignore[import-not-found]  # noqa: PLC0415  (optional, measurement only)
    except ImportError:
        return None
    import cv2  # noqa: PLC0415

    hog = dlib.get_frontal_face_detector()

    def detect(grey: np.ndarray) -> list[FaceBox]:
        scale = min(1.0, max_side / max(grey.shape))
        small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
        rects = hog(small, 1)
        return [
            FaceBox(
                round(r.left() / scale), round(r.top() / scale), round(r.width() / scale), round(r.height() / scale)
            )
            for r in rects
        ]

    return detect


def make_scenes(
    count: int, condition: str, rng: np.random.Generator, images: np.ndarray, labels: np.ndarray
) -> list[Scene]:
    """``count`` 960x540 photos of 1-5 random public_test faces each, composed per ``condition``."""
    scenes = []
    for _ in range(count):
        idx = rng.choice(len(images), int(rng.integers(1, 6)), replace=False)
        scenes.append(compose([images[i] for i in idx], [int(labels[i]) for i in idx], rng, **CONDITIONS[condition]))
    return scenes


def detection_scores(detect: Detect, scenes: list[Scene]) -> dict[str, float]:
    """Recall over all pasted faces, unmatched detections per photo, median ms per photo."""
    found = total = false = 0
    times = []
    for scene in scenes:
        started = time.perf_counter()
        boxes = detect(scene.grey)
        times.append(time.perf_counter() - started)
        matched = match(scene.boxes, [(b.x, b.y, b.w, b.h) for b in boxes])
        found += sum(m is not None for m in matched)
        total += len(matched)
        false += len(boxes) - sum(m is not None for m in matched)
    return {
        "recall": round(found / max(total, 1), 4),
        "false_per_photo": round(false / max(len(scenes), 1), 3),
        "ms_per_photo": round(1000 * float(np.median(times)), 1),
        "faces": total,
    }


def photo_path_scores(
    model: face_model.FaceEmotionModel, detector: YuNetDetector, scenes: list[Scene], crops: list[np.ndarray]
) -> dict[str, float]:
    """Emotion accuracy on every pasted face: its 48x48 original, and through detection with aligned/box crops.

    ``end_to_end`` counts a missed face as wrong; ``on_found`` only scores the faces the detector found.
    """
    labels = np.asarray([label for scene in scenes for label in scene.labels])
    reference = model.predict(crops).argmax(axis=1) == labels
    aligned, boxed, found = [], [], []
    for scene in scenes:
        image = DecodedImage(scene.grey, "PNG")
        boxes = detector.detect(scene.grey)
        matched = match(scene.boxes, [(b.x, b.y, b.w, b.h) for b in boxes])
        for m in matched:
            found.append(m is not None)
            box = boxes[m] if m is not None else FaceBox(0, 0, 48, 48)
            aligned.append(face_crop(image, box, PipelineConfig(align=True)))
            boxed.append(face_crop(image, box, PipelineConfig(align=False)))
    hit = np.asarray(found)
    scores = {"faces": len(labels), "found": int(hit.sum()), "crop_accuracy": float(reference.mean())}
    for name, batch in (("aligned", aligned), ("box", boxed)):
        correct = (model.predict(batch).argmax(axis=1) == labels) & hit
        scores[f"{name}_end_to_end"] = float(correct.mean())
        scores[f"{name}_on_found"] = float(correct[hit].mean()) if hit.any() else 0.0
    scores["crop_accuracy_on_found"] = float(reference[hit].mean()) if hit.any() else 0.0
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_ROOT))
    parser.add_argument("--scenes", type=int, default=60, help="photos per condition")
    parser.add_argument("--path-scenes", type=int, default=200, help="photos for the photo-path accuracy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--yunet-sides", type=int, nargs="+", default=[800], help="YuNet detection max sides")
    parser.add_argument("--path-side", type=int, default=1280, help="YuNet max side for the photo path")
    parser.add_argument("--path-runtime", choices=["onnx", "native"], default="onnx", help="YuNet for the photo path")
    parser.add_argument("--detectors", nargs="+", default=["yunet", "haar", "dlib-hog"], choices=DETECTORS)
    parser.add_argument("--blazeface", type=Path, help="folder with MediaPipe's face_detection_*.tflite files")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    split = load_split("public_test", Path(args.data), DEFAULT_CACHE)
    rng = np.random.default_rng(args.seed)
    detectors = make_detectors(args.detectors, args.yunet_sides, args.blazeface)
    results: dict[str, Any] = {"detection": {}, "photo_path": {}}
    for condition in CONDITIONS:
        scenes = make_scenes(args.scenes, condition, rng, split.images, split.labels)
        for name, detect in detectors.items():
            scores = detection_scores(detect, scenes)
            results["detection"].setdefault(condition, {})[name] = scores
            print(condition, name, json.dumps(scores), flush=True)
    empty = [compose([], [], rng) for _ in range(args.scenes)]
    for name, detect in detectors.items():
        scores = detection_scores(detect, empty)
        results["detection"].setdefault("no_faces", {})[name] = scores
        print("no_faces", name, json.dumps(scores), flush=True)
    if args.path_scenes <= 0:
        _write(args.json, results)
        return
    model = face_model.load(ARTIFACT_DIR)
    yunet = YuNetDetector(max_side=args.path_side, runtime=args.path_runtime)
    for condition in ("upright", "rotated", "dark"):
        rng_path = np.random.default_rng(args.seed + 1)
        idx_all: list[int] = []
        scenes = []
        for _ in range(args.path_scenes):
            idx = rng_path.choice(len(split.images), 4, replace=False)
            scene = compose(
                [split.images[i] for i in idx], [int(split.labels[i]) for i in idx], rng_path, **CONDITIONS[condition]
            )
            scenes.append(scene)
            idx_all.extend(int(idx[k]) for k in scene.kept)
        scores = photo_path_scores(model, yunet, scenes, [split.images[i] for i in idx_all])
        results["photo_path"][condition] = scores
        print("photo_path", condition, json.dumps(scores), flush=True)
    _write(args.json, results)


def _write(path: str | None, results: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


DETECTORS = ("yunet", "yunet-native", "haar", "dlib-hog", "blazeface")


def make_detectors(names: list[str], sides: list[int], blazeface: Path | None) -> dict[str, Detect]:
    """The detectors to compare, by name (optional ones left out when not installed)."""
    detectors: dict[str, Detect] = {}
    if "yunet" in names:
        for side in sides:
            detectors[f"yunet@{side}" if len(sides) > 1 else "yunet"] = YuNetDetector(max_side=side).detect
    if "yunet-native" in names:
        detectors[f"yunet-native@{sides[0]}"] = YuNetDetector(max_side=sides[0], runtime="native").detect
    if "haar" in names:
        detectors["haar"] = HaarDetector().detect
    hog = dlib_hog() if "dlib-hog" in names else None
    if hog is not None:
        detectors["dlib-hog"] = hog
    if "blazeface" in names and blazeface is not None:
        from training.image.blazeface import BlazeFace  # noqa: PLC0415  (optional, measurement only)

        for variant in ("short", "full"):
            detectors[f"blazeface-{variant}"] = BlazeFace(blazeface, variant).detect
    return detectors


if __name__ == "__main__":
    main()
