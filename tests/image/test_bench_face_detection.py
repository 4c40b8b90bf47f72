"""bench/face_detection.py runs end to end on one photo and reports every figure."""

import importlib.util
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_face_detection_bench_smoke() -> None:
    spec = importlib.util.spec_from_file_location("bench_face_detection", ROOT / "bench" / "face_detection.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (photo,) = bench.photos(1)
    assert cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (720, 1280)
    result = bench.main(["--photos", "1", "--repeats", "1", "--runtime", "torch", "--no-fer", "--path-sides", "800"])
    assert set(result["detection_ms"]) == {"yunet@512", "yunet@640", "yunet@800", "yunet@1280", "haar@800"}
    # The one photo holds one face: YuNet finds it at both resolutions, and so does the whole path.
    assert result["detection_ms"]["yunet@1280"]["faces_found"] == 1
    assert result["photo_path@800"]["ours_faces"] == 1
    assert result["photo_path@800"]["ours_ms"] > 0
