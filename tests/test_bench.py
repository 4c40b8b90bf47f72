"""The benchmark scripts: the model bench (shipped fusion model), the serving bench's load generator and helpers."""

import asyncio
import importlib.util
import io
import json
import shutil
import socket
import sys
import threading
import time
import wave
from pathlib import Path

import httpx
import pytest
import uvicorn

ROOT = Path(__file__).resolve().parents[1]


def _bench(name: str):
    """Import ``bench/<name>.py`` (the scripts are run, not installed) as the module ``bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_fusion_bench_reports_every_figure() -> None:
    bench = _bench("run_all")
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


async def test_serving_load_generator_counts_latencies_and_errors() -> None:
    serving = _bench("serving")
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["x-internal-token"])
        number = len(seen)
        await asyncio.sleep(0.002)
        return httpx.Response(503 if number % 5 == 0 else 200, json={})

    run = await serving.load(
        "http://svc", serving.text_request(), concurrency=4, total=20, transport=httpx.MockTransport(handler)
    )
    summary = run.summary()
    assert summary["requests"] == 20 and summary["errors"] == 4
    assert summary["p95_ms"] >= summary["p50_ms"] >= 2
    assert summary["items_per_s"] > 0
    assert set(seen) == {serving.TOKEN}  # the services' internal token is sent


class _CountingServer:
    """A real HTTP server on loopback (uvicorn in a thread) that answers every fifth request 503."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, bytes]] = []
        self.bodies: set[bytes] = set()
        self.refused = 0
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", interface="asgi3"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def app(self, scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        self.seen.append((scope["path"], headers.get(b"x-internal-token", b""), headers.get(b"content-type", b"")))
        self.bodies.add(body)
        status = 503 if len(self.seen) % 5 == 0 else 200
        self.refused += status == 503
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    def __enter__(self) -> "_CountingServer":
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)")
async def test_wrk_load_sends_every_body_and_counts_errors_and_items() -> None:
    serving = _bench("serving")
    call = serving.json_call("/predict/batch", [{"texts": ["a", "b"]}, {"texts": ["c", "d"]}], items=2)
    with _CountingServer() as server:
        run = await serving.wrk_load(f"http://127.0.0.1:{server.port}", call, concurrency=2, duration_s=1)
    # wrk counts the answers it read within the second: all but at most the 2 still in flight.
    assert len(server.seen) >= 10 and 0 <= len(server.seen) - run.requests <= 2
    assert 0 <= server.refused - run.errors <= 2 and run.errors >= 1
    assert run.items == 2 * (run.requests - run.errors)
    assert run.p95_ms >= run.p50_ms > 0 and 0.9 <= run.seconds <= 3
    assert {(path, token, kind) for path, token, kind in server.seen} == {
        ("/predict/batch", serving.TOKEN.encode(), b"application/json")
    }
    assert server.bodies == {json.dumps(b).encode() for b in ({"texts": ["a", "b"]}, {"texts": ["c", "d"]})}


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)")
async def test_a_cancelled_wrk_run_stops_sending() -> None:
    serving = _bench("serving")
    with _CountingServer() as server:
        url = f"http://127.0.0.1:{server.port}"
        run = asyncio.create_task(serving.wrk_load(url, serving.text_request(), concurrency=2, duration_s=60))
        await asyncio.sleep(1.0)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        stopped_at = len(server.seen)
        await asyncio.sleep(0.5)
        assert stopped_at > 0 and len(server.seen) == stopped_at  # wrk was killed, not left running for 60 s


def test_multipart_calls_are_encoded_once_with_their_boundary() -> None:
    serving = _bench("serving")
    call = serving.file_request("image", [b"one", b"two"], "/predict/batch", size=2)
    assert call.items == 2 and len(call.bodies) == 2
    for content, content_type in call.bodies:
        boundary = content_type.split("boundary=")[1].encode()
        assert content_type.startswith("multipart/form-data") and content.count(boundary) == 3
        assert content.count(b'name="image"') == 2 and b"Content-Type: image/jpeg" in content


def test_serving_inputs_and_helpers() -> None:
    serving = _bench("serving")
    with wave.open(io.BytesIO(serving.voice_wav(1.0)), "rb") as clip:
        assert clip.getframerate() == 16000 and clip.getnframes() == 16000
    assert serving.face_jpeg(1)[:2] == b"\xff\xd8"
    config = serving.haproxy_config(9000, [9001, 9002, 9003, 9004])
    assert config.count("server text") == 4 and "mode tcp" in config and "balance roundrobin" in config
    assert serving._shares([10, 10, 10], [20, 30, 40]) == [round(10 / 60, 3), round(20 / 60, 3), 0.5]


def test_speech_finetune_cost_times_every_setup(tmp_path: Path) -> None:
    import json

    bench = _bench("speech_finetune_cost")
    out = tmp_path / "cost.json"
    args = ["--threads", "1", "--batch", "2", "--frames", "4", "--repeats", "1", "--windows", "600", "--json", str(out)]
    assert bench.main(args) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["setup"] for r in results] == [
        "all six blocks",
        "top 2 block(s), lower blocks run each step",
        "top 2 block(s), lower blocks cached once",
        "top 1 block(s), lower blocks cached once",
    ]
    for r in results:
        assert r["ms_per_window"] > 0
        assert abs(r["minutes_per_epoch"] - r["ms_per_window"] * 600 / 60_000) <= 0.06  # both rounded to 0.1
