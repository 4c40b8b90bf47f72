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
    ((small, truth),) = bench.scenes(1, scale=0.5)
    assert cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_GRAYSCALE).shape == (360, 640)
    assert len(truth) == 1
    argv = ["--photos", "1", "--repeats", "1", "--runtime", "torch", "--no-fer", "--sides", "800", "1280"]
    result = bench.main([*argv, "--path-sides", "800", "--sizes", "1280x720"])
    detection = result["detection"]["1280x720"]
    assert set(detection) == {"yunet-onnx@800", "yunet-onnx@1280", "yunet-native@800", "yunet-native@1280", "haar@800"}
    # The one photo holds one face: both YuNet runtimes find it, and so does the whole path.
    assert detection["yunet-onnx@1280"]["found"] == detection["yunet-native@1280"]["found"] == 1
    path = result["photo_path"]["1280x720"]
    assert path["onnx@800"]["ours_found"] == path["native@800"]["ours_found"] == 1
    assert path["onnx@800"]["ours_ms"] > 0
