"""Speech models side by side on one CPU core: load + warm-up time, per-clip latency, realtime factor.

Each model folder is timed in its own subprocess (one thread for TensorFlow and for the BLAS that
runs the NumPy Whisper encoder) on the same clips through the service's path (decode, segment,
features/encoder, head, combine):

* a synthetic 3-second voice-like clip (the issue's yardstick: realtime factor >= 20x), repeated;
* ``--n`` RAVDESS actors 17-20 clips from ``--data`` when that folder exists.

Realtime factor = seconds of audio / seconds of wall time (higher is faster). A Whisper model is
timed once per ``--runtimes`` entry (where its encoder runs: onnxruntime, or the NumPy reference).

    python bench/speech_rtf.py [--models services/speech/artifacts services/speech/artifacts/legacy_logmel]
                               [--runtimes onnx numpy] [--threads 1]
"""

import argparse
import csv
import io
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_MODELS = ("services/speech/artifacts", "services/speech/artifacts/legacy_logmel")


def synthetic_clip(seconds: float = 3.0, sr: int = 16000) -> bytes:
    """A voice-like WAV: harmonics of a gliding f0 with syllable-rate amplitude modulation."""
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(160 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t))) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.55 + 0.45 * np.sin(2 * np.pi * 3.5 * t) ** 2)
    buffer = io.BytesIO()
    sf.write(buffer, (0.2 * y / np.abs(y).max()).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def ravdess_clips(data: Path, n: int, seed: int) -> list[Path]:
    folder = data / "speech" / "ravdess"
    if not (folder / "manifest.csv").is_file():
        return []
    with (folder / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["speaker"].split("_")[-1]) >= 17]
    return [folder / r["path"] for r in random.Random(seed).sample(rows, min(n, len(rows)))]


def bench_model(model_dir: Path, clips: list[Path], repeats: int, runtime: str, threads: int) -> dict[str, Any]:
    """Time one model folder in this process (call it in a fresh subprocess)."""
    from services.speech.model import load
    from services.speech.pipeline import analyse

    started = time.perf_counter()
    model = load(model_dir, threads=threads, encoder_runtime=runtime)
    model.warmup()
    load_s = time.perf_counter() - started

    def timed(data: bytes) -> tuple[float, float]:
        t0 = time.perf_counter()
        (result,) = analyse([data], model=model, max_duration_s=600)
        return time.perf_counter() - t0, result.duration_s

    three = synthetic_clip()
    short = [timed(three)[0] for _ in range(repeats)]
    latencies, audio_s = [], 0.0
    for path in clips:
        seconds, duration = timed(path.read_bytes())
        latencies.append(seconds)
        audio_s += duration
    out: dict[str, Any] = {
        "model": f"{model.name} {model.version}",
        "encoder": runtime if model.encoder is not None else "-",
        "load_and_warmup_s": round(load_s, 2),
        "clip3s_median_ms": round(1000 * statistics.median(short), 1),
        "clip3s_rtf": round(3.0 / statistics.median(short), 1),
    }
    if latencies:
        out.update(
            {
                "ravdess_n": len(latencies),
                "ravdess_median_ms": round(1000 * statistics.median(latencies), 1),
                "ravdess_rtf": round(audio_s / sum(latencies), 1),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=32, help="RAVDESS actors 17-20 clips to time")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls on the synthetic 3 s clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runtimes", nargs="+", default=["onnx", "numpy"], help="encoder runtimes to time")
    parser.add_argument("--threads", type=int, default=1, help="threads for TF, BLAS and onnxruntime")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--runtime", default="onnx", help=argparse.SUPPRESS)
    args = parser.parse_args()
    clips = ravdess_clips(args.data, args.n, args.seed)
    if args.child:
        print(json.dumps(bench_model(Path(args.child), clips, args.repeats, args.runtime, args.threads)))
        return 0
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "TF_NUM_INTRAOP_THREADS": threads, "TF_CPP_MIN_LOG_LEVEL": "2"}
    rows = []
    for folder in args.models:
        uses_encoder = "whisper" in json.loads((ROOT / folder / "speech_emotion.json").read_text())["inputs"]
        for runtime in args.runtimes if uses_encoder else args.runtimes[:1]:
            cmd = [sys.executable, __file__, "--child", str(ROOT / folder), "--n", str(args.n), "--runtime", runtime]
            cmd += ["--repeats", str(args.repeats), "--seed", str(args.seed), "--data", str(args.data)]
            cmd += ["--threads", threads]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    keys = list(dict.fromkeys(k for row in rows for k in row))
    print("  ".join(f"{k:>20}" for k in keys))
    for row in rows:
        print("  ".join(f"{row.get(k, '-')!s:>20}" for k in keys))
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "cpu": cpu_name(), "rows": rows}, indent=1) + "\n")
    return 0


def cpu_name() -> str:
    """The CPU's model name (results differ a lot between this project's machines)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
