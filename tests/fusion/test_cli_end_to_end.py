"""`emotion evaluate fusion` end to end: the three real modality models and the shipped forest.

Tiny fixture manifests (synthesised voiced audio, drawn faces, short texts) go through the real
CLI in a subprocess. This test is not skipped: until every model is shipped it fails and says
which one is missing.
"""

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from services.fusion.model import SUBSET_NAMES

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_RATE = 16_000


def voiced_audio(seconds: float, pitch: float, seed: int) -> np.ndarray:
    """A speech-like signal: a gliding pitch with harmonics, syllable-rate amplitude and a little noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = pitch * (1 + 0.15 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5
    noise = np.random.default_rng(seed).normal(0, 0.02, t.shape)
    signal = 0.3 * voice * syllables + noise
    return (0.6 * signal / np.abs(signal).max()).astype(np.float32)


def drawn_face(*, smile: bool) -> np.ndarray:
    """A 96x96 greyscale frontal face: oval, brows, eyes, nose, smiling or drooping mouth."""
    img = np.full((96, 96), 60, np.uint8)
    cv2.ellipse(img, (48, 50), (30, 40), 0, 0, 360, 170, -1)
    for x in (36, 60):
        cv2.line(img, (x - 7, 34), (x + 7, 34 if smile else 31), 50, 2)
        cv2.ellipse(img, (x, 41), (6, 3), 0, 0, 360, 240, -1)
        cv2.circle(img, (x, 41), 2, 20, -1)
    cv2.line(img, (48, 45), (46, 58), 120, 2)
    if smile:
        cv2.ellipse(img, (48, 66), (12, 7), 0, 0, 180, 40, 3)
    else:
        cv2.ellipse(img, (48, 74), (12, 6), 0, 180, 360, 40, 3)
    return cv2.GaussianBlur(img, (3, 3), 0)


def _write(path: Path, header: list[str], rows: list[list[str]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _missing_models() -> list[str]:
    missing = []
    for modality in ("speech", "text", "image"):
        if importlib.util.find_spec(f"training.{modality}.evaluate") is None:
            missing.append(f"training/{modality}/evaluate.py")
        artifacts = ROOT / "services" / modality / "artifacts"
        if not artifacts.is_dir() or not any(p.is_file() for p in artifacts.rglob("*")):
            missing.append(f"services/{modality}/artifacts/")
    if not (ROOT / "services/fusion/artifacts/fusion_forest.joblib").is_file():
        missing.append("services/fusion/artifacts/fusion_forest.joblib")
    return missing


def test_evaluate_fusion_cli_with_the_real_models(tmp_path: Path) -> None:
    missing = _missing_models()
    assert not missing, f"models not shipped yet, so the fusion CLI cannot run end to end: {', '.join(missing)}"

    speech_rows, image_rows = [], []
    for k, (label, pitch, smile) in enumerate((("happy", 230.0, True), ("sad", 120.0, False))):
        sf.write(tmp_path / f"{label}.wav", voiced_audio(2.0, pitch, k), SAMPLE_RATE)
        cv2.imwrite(str(tmp_path / f"{label}.png"), drawn_face(smile=smile))
        speech_rows.append([f"{label}.wav", label])
        image_rows.append([f"{label}.png", label])
    texts = [
        ["I am so happy today, this is wonderful news!", "happy"],
        ["I feel so sad and lonely since she left.", "sad"],
        ["Why would you do that? I am furious!", "angry"],  # no speech/image for angry: never drawn
    ]
    speech = _write(tmp_path / "speech.csv", ["path", "emotion"], speech_rows)
    text = _write(tmp_path / "text.csv", ["text", "emotion"], texts)
    image = _write(tmp_path / "image.csv", ["path", "emotion"], image_rows)
    out = tmp_path / "fusion.json"

    command = [sys.executable, "-m", "training.cli", "evaluate", "fusion", "--speech", speech, "--text", text]
    command += ["--image", image, "--detect", "never", "--n", "20", "--seed", "3", "--json", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    results = json.loads(out.read_text())
    singles = [f"{m} (single model)" for m in ("speech", "text", "image")]
    assert list(results) == [*SUBSET_NAMES, *singles]
    for name, entry in results.items():
        assert entry["n"] == 20, name
        assert 0.0 <= entry["accuracy"] <= 1.0 and 0.0 <= entry["macro_f1"] <= 1.0
        assert f"{name:<22} accuracy={entry['accuracy']:.4f}" in done.stdout
    # Clear text is the one input a real model should get right here.
    assert results["text (single model)"]["accuracy"] == 1.0
