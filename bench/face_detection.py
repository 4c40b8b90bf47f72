"""Face detection speed on 1280x720 photos, and the whole photo path against the ``fer`` package, side by side.

    OMP_NUM_THREADS=1 python bench/face_detection.py [--photos 8] [--repeats 3] [--json out.json]

Times are medians of per-photo medians, in CPU milliseconds of this process by default (``--clock cpu``:
stable when other jobs share the machine; ``--clock wall`` for elapsed time on an idle one).
Photos: 1280x720 JPEGs composed from matplotlib's public-domain grace_hopper.jpg (1-3 faces of 70-300 px,
some tilted up to 15 deg, on a cluttered background), so no dataset is needed. One thread everywhere.
- detection: median ms per photo for YuNet (max side 800 and 1280) and the Haar cascade.
- photo path: JPEG bytes -> decode -> detect -> align -> classify, ours (the service's code and runtime)
  vs ``fer.FER(mtcnn=False).detect_emotions`` (cv2.imdecode + Haar + mini-Xception), interleaved photo by
  photo so both see the same machine load. ``fer`` is optional: ``pip install --no-deps fer==25.10.3``
  (it ships its weights; tensorflow comes with the speech extra). Its ``pkg_resources`` import is shimmed.
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
from training.image.scenes import background, paste_face  # noqa: E402

MAX_PIXELS = 40_000_000


def hopper_head() -> np.ndarray:
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        grey = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_GRAYSCALE)
    return np.asarray(grey[90:370, 130:410])


def photos(count: int, seed: int = 0) -> list[bytes]:
    """``count`` 1280x720 JPEGs (quality 90) with 1-3 faces each."""
    rng = np.random.default_rng(seed)
    head = hopper_head()
    out = []
    for i in range(count):
        canvas = background(1280, 720, rng)
        slots = [(40, 60, 300), (420, 300, 200), (760, 100, 140), (1000, 420, 90), (1150, 120, 70)]
        for j in rng.choice(len(slots), 1 + i % 3, replace=False):
            paste_face(canvas, head, slots[int(j)], angle=float(rng.uniform(-15, 15)))
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(encoded.tobytes())
    return out


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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runtime", default="onnx", help="our CNN's runtime: onnx (the service default) or torch")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="CPU time (default) or wall time")
    parser.add_argument("--path-sides", type=int, nargs="+", default=[512, 640, 800], help="detection max sides")
    parser.add_argument("--no-fer", action="store_true", help="skip the fer package even if installed")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    global CLOCK  # noqa: PLW0603  (a script-level switch, read by median_ms)
    CLOCK = args.clock
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    data = photos(args.photos)
    greys = [decode_image(d, max_pixels=MAX_PIXELS).grey for d in data]
    results: dict[str, Any] = {
        "photos": len(data),
        "size": "1280x720",
        "threads": 1,
        "clock": CLOCK,
        "detection_ms": {},
    }

    detectors = {
        "yunet@512": YuNetDetector(max_side=512),
        "yunet@640": YuNetDetector(max_side=640),
        "yunet@800": YuNetDetector(max_side=800),
        "yunet@1280": YuNetDetector(max_side=1280),
        "haar@800": HaarDetector(max_side=800),
    }
    for name, detector in detectors.items():
        per_photo = [median_ms(lambda g=g, d=detector: d.detect(g), args.repeats) for g in greys]
        found = sum(len(detector.detect(g)) for g in greys)
        results["detection_ms"][name] = {"median": round(statistics.median(per_photo), 1), "faces_found": found}
        print(f"detect {name:>11}: {statistics.median(per_photo):7.1f} ms/photo  faces found {found}", flush=True)

    try:
        model = face_model.load(ARTIFACT_DIR, runtime=args.runtime, threads=1)
    except Exception as exc:  # noqa: BLE001  (onnxruntime missing: fall back to PyTorch, and say so)
        print(f"runtime {args.runtime} unavailable ({exc}); using torch")
        model = face_model.load(ARTIFACT_DIR, runtime="torch")
    results["runtime"] = model.runtime
    fer = None if args.no_fer else load_fer()
    for max_side in args.path_sides:
        detector = FaceDetector(max_side=max_side)

        def ours(d: bytes, det: FaceDetector = detector) -> int:
            (result,) = analyze_batch(
                [decode_image(d, max_pixels=MAX_PIXELS)], model=model, detector=det, mode=DetectMode.AUTO
            )
            return len(result.faces)

        ours(data[0])  # warm-up (ONNX session, first allocations)
        timings: dict[str, list[float]] = {"ours": [], "fer": []}
        faces = {"ours": 0, "fer": 0}
        if fer is not None:
            fer.detect_emotions(cv2.imdecode(np.frombuffer(data[0], np.uint8), cv2.IMREAD_COLOR))
        for d in data:
            timings["ours"].append(median_ms(lambda d=d: ours(d), args.repeats))
            faces["ours"] += ours(d)
            if fer is not None:
                run_fer = lambda d=d: fer.detect_emotions(cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR))  # noqa: E731
                timings["fer"].append(median_ms(run_fer, args.repeats))
                faces["fer"] += len(run_fer())
        row: dict[str, Any] = {"ours_ms": round(statistics.median(timings["ours"]), 1), "ours_faces": faces["ours"]}
        if fer is not None:
            row |= {"fer_ms": round(statistics.median(timings["fer"]), 1), "fer_faces": faces["fer"]}
            row["speedup"] = round(row["fer_ms"] / row["ours_ms"], 2)
        results[f"photo_path@{max_side}"] = row
        print(f"photo path (detection max side {max_side}): {json.dumps(row)}", flush=True)
    if fer is None:
        print("fer not installed: pip install --no-deps fer==25.10.3 for the side-by-side figures")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
