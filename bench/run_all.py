"""Benchmark each modality's inference path on the CPU: load time, latency, batch throughput, memory.

Runs every modality in its own subprocess (so peak memory is per model), through the same
``training.<modality>.evaluate`` functions the CLI and the services use, on real validation
items from the data folder. Prints a table and the ratios that matter:

* batch speed-up = items/s when a batch is sent / items/s one call at a time;
* realtime factor (speech) = seconds of audio processed per second of wall time.

``fusion`` times the shipped fusion model on random probability vectors for all three modalities
(its input is the other models' output, so no data files are needed).

    python bench/run_all.py [--data ../shared/data] [--n 64] [--only text,image,fusion]
"""

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sample_rows(data: Path, modality: str, n: int, seed: int) -> tuple[Path, list[dict[str, str]]]:
    """Pick n validation rows for a modality; returns (folder the paths are relative to, rows)."""
    rng = random.Random(seed)
    if modality == "text":
        rows: list[dict[str, str]] = []
        for name in ("dair_ai_emotion", "goemotions", "meld", "isear"):
            with (data / "text" / name / "val.csv").open(newline="", encoding="utf-8") as fh:
                rows += [{"text": r["text"], "emotion": r["emotion"]} for r in csv.DictReader(fh)]
        return data / "text", rng.sample(rows, n)
    if modality == "speech":
        folder = data / "speech" / "ravdess"
        with (folder / "manifest.csv").open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["speaker"].split("_")[-1]) >= 17]
        return folder, rng.sample(rows, min(n, len(rows)))
    folder = data / "image" / "fer2013"
    with (folder / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "public_test"]
    return folder, rng.sample(rows, n)


def bench_fusion(n: int, seed: int) -> tuple[float, list[float], float, int]:
    """(load + first call s, per-request latencies, one batch's seconds, n) for the fusion model."""
    import numpy as np

    from services.fusion.model import load
    from services.fusion.settings import DEFAULT_MODEL_DIR

    rng = np.random.default_rng(seed)
    inputs = [{m: rng.dirichlet(np.ones(7)) for m in ("speech", "text", "image")} for _ in range(n)]
    start = time.perf_counter()
    model = load(DEFAULT_MODEL_DIR)
    model.predict(inputs[:1])
    first = time.perf_counter() - start
    latencies = []
    for item in inputs[1 : min(len(inputs), 33)]:
        t0 = time.perf_counter()
        model.predict([item])
        latencies.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    model.predict(inputs)
    return first, latencies, time.perf_counter() - t0, len(inputs)


def bench_one(modality: str, data: Path, n: int, seed: int) -> dict[str, float]:
    """Measure one modality in this process."""
    if modality == "fusion":
        first, latencies, batch_seconds, count = bench_fusion(n, seed)
        return _summary(first, latencies, batch_seconds, count)

    import importlib

    from training.manifest import read_manifest

    folder, rows = _sample_rows(data, modality, n, seed)
    column = "text" if modality == "text" else "path"
    # Absolute paths, so the temporary manifest can live outside the read-only data folder.
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
        writer = csv.DictWriter(fh, fieldnames=[column, "emotion"])
        writer.writeheader()
        for r in rows:
            value = r[column] if column == "text" else str(folder / r[column])
            writer.writerow({column: value, "emotion": r["emotion"]})
        manifest_path = Path(fh.name)
    try:
        manifest = read_manifest(manifest_path, column)
        module = importlib.import_module(f"training.{modality}.evaluate")
        inputs = manifest.column("text") if column == "text" else [str(p) for p in manifest.resolve()]

        start = time.perf_counter()
        module.predict_one(inputs[0])  # loads the model
        first = time.perf_counter() - start

        latencies = []
        for value in inputs[1 : min(len(inputs), 33)]:
            t0 = time.perf_counter()
            module.predict_one(value)
            latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        module.predict_manifest(manifest)
        batch_seconds = time.perf_counter() - t0
    finally:
        manifest_path.unlink()

    result = _summary(first, latencies, batch_seconds, len(inputs))
    if modality == "speech":
        audio_seconds = sum(float(r["duration_s"]) for r in rows)
        result["realtime_factor"] = audio_seconds / batch_seconds
    return result


def _summary(first: float, latencies: list[float], batch_seconds: float, count: int) -> dict[str, float]:
    single_rate = 1 / statistics.mean(latencies)
    batch_rate = count / batch_seconds
    return {
        "load_and_first_s": first,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * sorted(latencies)[int(0.95 * (len(latencies) - 1))],
        "single_items_per_s": single_rate,
        "batch_items_per_s": batch_rate,
        "batch_speedup": batch_rate / single_rate,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="text,speech,image,fusion")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the results as JSON")
    args = parser.parse_args()

    if args.one:
        print(json.dumps(bench_one(args.one, Path(args.data), args.n, args.seed)))
        return 0

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    results: dict[str, dict[str, float]] = {}
    for modality in args.only.split(","):
        proc = subprocess.run(
            [sys.executable, __file__, "--one", modality, "--data", args.data, "--n", str(args.n)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
        )
        if proc.returncode != 0:
            print(f"{modality}: FAILED\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        results[modality] = json.loads(proc.stdout.strip().splitlines()[-1])

    print(f"CPU benchmark on {os.cpu_count()} cores, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, n={args.n} per modality")
    header = f"{'modality':<9}{'load+1st s':>11}{'p50 ms':>9}{'p95 ms':>9}{'1-by-1/s':>10}{'batch/s':>9}"
    print(header + f"{'speed-up':>10}{'RSS MB':>8}{'RTF':>7}")
    for modality, r in results.items():
        rtf = f"{r['realtime_factor']:>7.1f}" if "realtime_factor" in r else f"{'-':>7}"
        print(
            f"{modality:<9}{r['load_and_first_s']:>11.2f}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}"
            f"{r['single_items_per_s']:>10.1f}{r['batch_items_per_s']:>9.1f}{r['batch_speedup']:>9.2f}x"
            f"{r['peak_rss_mb']:>8.0f}{rtf}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
