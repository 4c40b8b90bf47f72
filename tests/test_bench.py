"""The benchmark script runs against the shipped fusion model (the only one it needs no data for)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fusion_bench_reports_every_figure() -> None:
    spec = importlib.util.spec_from_file_location("bench_run_all", ROOT / "bench" / "run_all.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.bench_one("fusion", ROOT / "no-data-needed", n=8, seed=0)
    assert set(result) == {
        "load_and_first_s",
        "p50_ms",
        "p95_ms",
        "single_items_per_s",
        "batch_items_per_s",
        "batch_speedup",
        "peak_rss_mb",
    }
    assert result["p95_ms"] >= result["p50_ms"] > 0
    assert result["batch_items_per_s"] > 0 and result["peak_rss_mb"] > 0
