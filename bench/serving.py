"""Serving benchmark: the services as real processes on loopback, driven over HTTP (``make bench``).

One run measures, and prints and writes as JSON:

* per inference service (text, image, speech, fusion): items/s and p50/p95 latency at concurrency 1
  and 32 with single-item requests, and through ``/predict/batch`` (text, image, speech);
* the old serving path (PyTorch fp32, batch-1 calls in threads: ``INFERENCE_RUNTIME=torch
  MAX_BATCH_SIZE=1 MAX_CONCURRENT_BATCHES=8``; for speech the NumPy encoder, ``ENCODER_RUNTIME=numpy``;
  for fusion scikit-learn's forest, ``INFERENCE_RUNTIME=sklearn``) next to the new one, as ratios;
* the gateway: ``/api/predict/text`` against the text service alone (p50 at c1, items/s at c32),
  and ``/api/predict/multimodal`` (text + image + audio) against the slowest modality's p50;
* the text service's RSS after warm-up and after ``--rss-requests`` more requests;
* scale-out: three text replicas behind HAProxy in TCP mode (an L4 balancer, as a Kubernetes
  Service is), the gateway in front; each replica's share of requests at c4 and c32, then a
  fourth replica started while load runs and the shares once it is up; throughput vs one replica.

Inputs are synthetic (sentences, drawn faces, a voiced tone), so no data folder is needed.

The timed runs are driven by ``wrk`` (Debian's C load generator: ``apt-get install -y wrk``) when it
is installed, else by an httpx loop in this process (``BENCH_LOAD_GENERATOR=wrk|httpx`` chooses). On two
cores the choice matters: the httpx loop costs about as much CPU per request as a small service, so
it took a core from the services it measured. Runs of a given number of requests (warm-ups, the RSS
runs) use httpx either way. The JSON says which generator ran.

    python bench/serving.py [--duration 5] [--rss-requests 10000] [--rss-seconds 90] [--json bench/results/serving.json]

Parts of it: ``--only text,gateway --rss-requests 0`` measures the gateway against the text service
alone (same JSON keys, no multimodal), ``--only scaleout --rss-requests 0`` the scale-out alone.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "bench-internal-token-" + "x" * 24
HEADERS = {"X-Internal-Token": TOKEN}
TEXTS = [
    "I am so happy today, everything went right!",
    "This is disgusting.",
    "I'm terrified of what the results will say tomorrow morning.",
    "He shouted at me again in front of everyone and I am absolutely furious about it.",
    "I miss her so much.",
    "Wait, what? I did not see that coming at all!",
    "The meeting is at 3 pm in room 4.",
    "ok",
    "Honestly I don't know how I feel about the move; part of me is excited, part of me dreads leaving.",
    "lol that was the best surprise party ever",
    "We lost the match in the last minute after leading the whole game, and nobody said a word on the bus home.",
    "Thanks for the update.",
]

# --------------------------------------------------------------------------- inputs


def face_jpeg(seed: int = 0) -> bytes:
    """A 320x320 JPEG with one drawn face (the Haar detector finds it)."""
    import cv2

    from tests.image.synth import face_image

    image = face_image(320, 320)
    image = np.clip(image.astype(np.int16) + (seed % 7) - 3, 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(data)


def voice_wav(seconds: float = 3.0, sr: int = 16000, seed: int = 0) -> bytes:
    """A voiced, pitch-modulated harmonic tone with syllable-like loudness (the VAD keeps it)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    pitch = 160 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t) + 0.08 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.55 + 0.45 * np.sin(2 * np.pi * 3.5 * t) ** 2)
    y = y + 0.01 * rng.standard_normal(len(t))
    pcm = (0.2 * y / np.abs(y).max() * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sr)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def fusion_body(i: int) -> dict[str, Any]:
    rng = np.random.default_rng(i)
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    return {m: dict(zip(labels, rng.dirichlet(np.ones(7)).tolist(), strict=True)) for m in ("speech", "text", "image")}


# --------------------------------------------------------------------------- processes


@dataclass
class Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) the process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Resident memory of the process (uvicorn runs the app in this very process)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@dataclass
class Fleet:
    workdir: Path
    services: dict[str, Service] = field(default_factory=dict)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, module: str, port: int, env: dict[str, str] | None = None) -> Service:
        environment = {
            **os.environ,
            "INTERNAL_TOKEN": TOKEN,
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "WARNING",
            "INFERENCE_THREADS": os.environ.get("INFERENCE_THREADS", "2"),
            "OMP_NUM_THREADS": os.environ.get("INFERENCE_THREADS", "2"),
            "ONNX_CACHE_DIR": str(self.workdir.parent / "onnx-cache"),
            **(env or {}),
        }
        log = self.workdir / f"{name}.log"
        command = [sys.executable, "-m", "uvicorn", "--factory", f"services.{module}.app:create_app"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.services[name] = Service(name, port, process, log)
        return self.services[name]

    def wait_ready(self, names: list[str], timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(names)
        with httpx.Client(timeout=2) as client:
            while pending and time.monotonic() < deadline:
                for name in sorted(pending):
                    service = self.services[name]
                    if service.process.poll() is not None:
                        raise RuntimeError(f"{name} exited:\n{service.log.read_text(errors='replace')[-3000:]}")
                    try:
                        if client.get(f"{service.url}/readyz").status_code == 200:
                            pending.discard(name)
                    except httpx.HTTPError:
                        pass
                time.sleep(0.5)
        if pending:
            raise RuntimeError(f"not ready after {timeout_s:.0f} s: {sorted(pending)}")

    def stop(self, name: str) -> None:
        service = self.services.pop(name)
        _terminate(service.process)

    def stop_all(self) -> None:
        for name in list(self.services):
            self.stop(name)
        for process in self.others:
            _terminate(process)
        self.others.clear()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a process we started (its own process group when it has one)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:  # not a group leader (e.g. haproxy): signal the process itself
        process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Call:
    """One kind of request: POST ``path`` with one of ``bodies`` (``(content, content type)``, cycled).

    The bodies are encoded once, up front, so no load generator spends time building them.
    """

    path: str
    bodies: tuple[tuple[bytes, str], ...]
    #: Items each request carries (a ``/predict/batch`` call counts its batch).
    items: int = 1

    def send(self, client: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
        content, content_type = self.bodies[i % len(self.bodies)]
        return client.post(self.path, content=content, headers={"Content-Type": content_type})


Files = list[tuple[str, tuple[str, bytes, str]]]


def json_call(path: str, bodies: list[Any], items: int = 1) -> Call:
    return Call(path, tuple((json.dumps(body).encode(), "application/json") for body in bodies), items)


def multipart_call(path: str, forms: list[tuple[dict[str, str], Files]], items: int = 1) -> Call:
    """A call whose bodies are multipart forms (``(fields, files)`` each), encoded by httpx."""
    bodies = []
    for data, files in forms:
        request = httpx.Request("POST", "http://bench" + path, data=data or None, files=files)
        bodies.append((request.read(), request.headers["content-type"]))
    return Call(path, tuple(bodies), items)


def text_request(path: str = "/predict") -> Call:
    return json_call(path, [{"text": text} for text in TEXTS])


def text_batch_request(size: int) -> Call:
    bodies = [{"texts": [TEXTS[(i + k) % len(TEXTS)] for k in range(size)]} for i in range(len(TEXTS))]
    return json_call("/predict/batch", bodies, items=size)


def file_request(field_name: str, payloads: list[bytes], path: str = "/predict", size: int = 1) -> Call:
    media_type = {"image": "image/jpeg", "audio": "audio/wav"}[field_name]
    forms: list[tuple[dict[str, str], Files]] = [
        ({}, [(field_name, (f"f{k}", payloads[(i + k) % len(payloads)], media_type)) for k in range(size)])
        for i in range(len(payloads))
    ]
    return multipart_call(path, forms, items=size)


def fusion_request() -> Call:
    return json_call("/fuse", [fusion_body(i) for i in range(16)])


@dataclass
class LoadResult:
    requests: int
    items: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float

    @classmethod
    def from_latencies(
        cls, requests: int, items: int, errors: int, seconds: float, latencies_ms: list[float]
    ) -> LoadResult:
        ordered = sorted(latencies_ms) or [float("nan")]
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return cls(requests, items, errors, seconds, statistics.median(ordered), p95)

    def summary(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "items_per_s": round(self.items / self.seconds, 2),
            "p50_ms": round(self.p50_ms, 2),
            "p95_ms": round(self.p95_ms, 2),
        }


def load_generator() -> str:
    """``wrk`` when installed (a C load generator: it leaves the 2 cores to the services), else ``httpx``."""
    choice = os.environ.get("BENCH_LOAD_GENERATOR") or ("wrk" if shutil.which("wrk") else "httpx")
    if choice not in ("wrk", "httpx"):
        raise ValueError(f"BENCH_LOAD_GENERATOR must be wrk or httpx, not {choice!r}")
    return choice


async def load(
    base_url: str,
    call: Call,
    *,
    concurrency: int,
    duration_s: float | None = None,
    total: int | None = None,
    headers: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LoadResult:
    """A closed loop: ``concurrency`` clients send requests back to back for ``duration_s`` (or ``total``).

    Timed runs go through :func:`wrk_load` when :func:`load_generator` says ``wrk``. The loop
    below, in Python (httpx), runs the others: runs of ``total`` requests (warm-ups, the RSS run;
    wrk only runs for a time) and runs through a given ``transport`` (tests). It costs about as
    much CPU per request as a small service.
    """
    if total is None and duration_s is not None and transport is None and load_generator() == "wrk":
        return await wrk_load(base_url, call, concurrency=concurrency, duration_s=duration_s, headers=headers)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0
    sent = 0
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers or HEADERS, timeout=120, limits=limits, transport=transport
    ) as client:
        start = time.perf_counter()
        deadline = start + duration_s if duration_s else float("inf")

        async def worker() -> None:
            nonlocal errors, sent
            while time.perf_counter() < deadline and (total is None or sent < total):
                index = sent
                sent += 1
                t0 = time.perf_counter()
                try:
                    response = await call.send(client, index)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(1000 * (time.perf_counter() - t0))
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return LoadResult.from_latencies(sent, len(latencies) * call.items, errors, seconds, latencies)


#: wrk's script: format every request once, send them in turn, print the figures as JSON at the end.
WRK_SCRIPT = """
local formatted = {}
init = function(args)
  for i, item in ipairs(ITEMS) do
    local f = assert(io.open(item[1], "rb"))
    local h = {}
    for name, value in pairs(HEADERS) do h[name] = value end
    h["Content-Type"] = item[2]
    formatted[i] = wrk.format("POST", PATH, h, f:read("*all"))
    f:close()
  end
end
local n = 0
request = function()
  n = n + 1
  return formatted[(n % #formatted) + 1]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, "other_errors": %d, '
    .. '"p50_us": %d, "p95_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95)))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for these ASCII values


async def wrk_load(
    base_url: str, call: Call, *, concurrency: int, duration_s: float, headers: dict[str, str] | None = None
) -> LoadResult:
    """The same closed loop driven by wrk (one thread, ``concurrency`` keep-alive connections).

    Its latency percentiles are over every answered request; any non-2xx answer, refused or
    timed-out request counts as an error (and its items are not counted).
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk), or set BENCH_LOAD_GENERATOR=httpx")
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        items = []
        for k, (content, content_type) in enumerate(call.bodies):
            path = Path(tmp) / f"body{k}"
            path.write_bytes(content)
            items.append(f"{{{_lua_string(str(path))}, {_lua_string(content_type)}}}")
        header_table = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or HEADERS).items())
        script = Path(tmp) / "load.lua"
        script.write_text(
            f"ITEMS = {{{', '.join(items)}}}\nHEADERS = {{{header_table}}}\nPATH = {_lua_string(call.path)}\n"
            + WRK_SCRIPT
        )
        command = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s", "--timeout", "120s"]
        process = await asyncio.create_subprocess_exec(
            *command, "-s", str(script), base_url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            output = (await process.communicate())[0].decode(errors="replace")
        except asyncio.CancelledError:  # a run stopped early (the scale-out's background load)
            process.kill()
            await process.wait()
            raise
    line = next((x for x in output.splitlines() if x.startswith("WRK_RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output[-2000:]}")
    r = json.loads(line.removeprefix("WRK_RESULT "))
    errors = r["status_errors"] + r["other_errors"]
    ok = max(0, r["requests"] - r["status_errors"])
    return LoadResult(
        r["requests"], ok * call.items, errors, r["duration_us"] / 1e6, r["p50_us"] / 1000, r["p95_us"] / 1000
    )


async def measured(service: Service, run: Awaitable[LoadResult]) -> dict[str, float]:
    """A load run's summary plus the service's CPU milliseconds per item (robust to a busy machine)."""
    before = service.cpu_s()
    result = await run
    spent = service.cpu_s() - before
    return result.summary() | {"cpu_ms_per_item": round(1000 * spent / max(1, result.items), 2)}


def replica_counts(urls: list[str]) -> list[float]:
    """Requests each replica has answered on /predict (from its Prometheus counter)."""
    counts = []
    with httpx.Client(timeout=5, headers=HEADERS) as client:
        for url in urls:
            total = 0.0
            for line in client.get(f"{url}/metrics").text.splitlines():
                if line.startswith("http_requests_total{") and 'route="/predict"' in line:
                    total += float(line.split()[-1])
            counts.append(total)
    return counts


# --------------------------------------------------------------------------- phases


def c1_seconds(service: str, duration_s: float) -> float:
    """How long the concurrency-1 run lasts: speech calls are slow, so fewer of them."""
    return duration_s * (0.5 if service == "speech" else 1.0)


async def bench_services(fleet: Fleet, args: argparse.Namespace, out: dict[str, Any]) -> None:
    d = args.duration
    faces = [face_jpeg(i) for i in range(8)]
    clips = [voice_wav(3.0, seed=i) for i in range(4)]
    plans: dict[str, tuple[Call, Call | None]] = {
        "text": (text_request(), text_batch_request(32)),
        "image": (file_request("image", faces), file_request("image", faces, "/predict/batch", 16)),
        "speech": (file_request("audio", clips), file_request("audio", clips, "/predict/batch", 8)),
        "fusion": (fusion_request(), None),
    }
    for name, (single, batch) in plans.items():
        if name not in fleet.services:
            continue
        service = fleet.services[name]
        url = service.url
        await load(url, single, concurrency=4, total=8)  # warm-up
        result: dict[str, Any] = {
            "c1": await measured(service, load(url, single, concurrency=1, duration_s=c1_seconds(name, d))),
            "c32": await measured(service, load(url, single, concurrency=32, duration_s=d)),
        }
        if batch is not None:
            result["batch"] = await measured(service, load(url, batch, concurrency=1, duration_s=d)) | {
                "batch_size": batch.items
            }
        result["c32_over_c1"] = round(result["c32"]["items_per_s"] / result["c1"]["items_per_s"], 2)
        out["services"][name] = result
        print(f"  {name}: {json.dumps(result)}", flush=True)
    for name in ("text", "image", "speech", "fusion"):
        old = f"{name}_old"
        if old not in fleet.services:
            continue
        service = fleet.services[old]
        url = service.url
        single = plans[name][0]
        await load(url, single, concurrency=4, total=8)
        result = {
            "c1": await measured(service, load(url, single, concurrency=1, duration_s=c1_seconds(name, d))),
            "c32": await measured(service, load(url, single, concurrency=32, duration_s=d)),
        }
        new = out["services"][name]
        result["new_over_old_c1_items_per_s"] = round(new["c1"]["items_per_s"] / result["c1"]["items_per_s"], 2)
        result["new_over_old_c32_items_per_s"] = round(new["c32"]["items_per_s"] / result["c32"]["items_per_s"], 2)
        result["old_over_new_c1_p50"] = round(result["c1"]["p50_ms"] / new["c1"]["p50_ms"], 2)
        result["old_over_new_c32_cpu_per_item"] = round(
            result["c32"]["cpu_ms_per_item"] / new["c32"]["cpu_ms_per_item"], 2
        )
        out["old_path"][name] = result
        print(f"  {old}: {json.dumps(result)}", flush=True)


def gateway_token(url: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as client:
        user = {"username": "bench", "email": "bench@example.com", "password": "bench-password-1"}
        client.post("/api/register", json=user)
        response = client.post("/api/login", data={"username": "bench", "password": user["password"]})
        response.raise_for_status()
        return str(response.json()["access_token"])


def gateway_env(workdir: Path, urls: dict[str, str]) -> dict[str, str]:
    """The gateway's settings: SQLite in the work folder, or ``$BENCH_DATABASE_URL`` (an empty database)."""
    return {
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{workdir / 'gateway.db'}",
        "AUTO_MIGRATE": "true",
        "RATE_LIMIT_ENABLED": "false",
        "BCRYPT_ROUNDS": "4",
        **{f"{name.upper()}_URL": url for name, url in urls.items()},
    }


async def bench_gateway(fleet: Fleet, args: argparse.Namespace, out: dict[str, Any]) -> None:
    d = args.duration
    gateway = fleet.services["gateway"]
    url = gateway.url
    headers = {"Authorization": f"Bearer {gateway_token(url)}"}
    text = text_request("/api/predict/text")
    await load(url, text, concurrency=4, total=8, headers=headers)
    c1 = await measured(gateway, load(url, text, concurrency=1, duration_s=d, headers=headers))
    c32 = await measured(gateway, load(url, text, concurrency=32, duration_s=d, headers=headers))
    services = out["services"]
    result: dict[str, Any] = {
        "text_c1": c1,
        "text_c32": c32,
        "text_p50_over_service_p50": round(c1["p50_ms"] / services["text"]["c1"]["p50_ms"], 2),
        "text_c32_throughput_over_service": round(c32["items_per_s"] / services["text"]["c32"]["items_per_s"], 2),
    }
    if {"image", "speech", "fusion"} <= set(fleet.services):  # the gateway-only mode (--only text,gateway) skips it
        files: Files = [
            ("image", ("face.jpg", face_jpeg(0), "image/jpeg")),
            ("audio", ("clip.wav", voice_wav(3.0), "audio/wav")),
        ]
        multimodal = multipart_call("/api/predict/multimodal", [({"text": text}, files) for text in TEXTS])

        await load(url, multimodal, concurrency=1, total=2, headers=headers)
        multi = (await load(url, multimodal, concurrency=1, duration_s=d, headers=headers)).summary()
        slowest = max(("text", "image", "speech"), key=lambda m: services.get(m, {}).get("c1", {}).get("p50_ms", 0))
        result |= {
            "multimodal_c1": multi,
            "slowest_modality": slowest,
            "multimodal_p50_over_slowest_p50": round(multi["p50_ms"] / services[slowest]["c1"]["p50_ms"], 2),
        }
    out["gateway"] = result
    print(f"  gateway: {json.dumps(result)}", flush=True)


async def bench_rss(fleet: Fleet, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """RSS after warm-up and after ``--rss-requests`` requests (or ``--rss-seconds``, whichever comes first)."""
    requests = {"text": text_request(), "fusion": fusion_request()}
    out["rss"] = {}
    for name, request in requests.items():
        if name not in fleet.services:
            continue
        service = fleet.services[name]
        before = service.rss_mb()
        run = await load(service.url, request, concurrency=32, total=args.rss_requests, duration_s=args.rss_seconds)
        after = service.rss_mb()
        out["rss"][name] = {
            "requests": run.requests,
            "errors": run.errors,
            "start_mb": round(before, 1),
            "after_mb": round(after, 1),
            "growth": round(after / before - 1, 4),
        }
        print(f"  rss {name}: {json.dumps(out['rss'][name])}", flush=True)


def haproxy_config(port: int, replicas: list[int]) -> str:
    servers = "\n".join(
        f"    server text{i} 127.0.0.1:{p} check inter 500ms fall 1 rise 1" for i, p in enumerate(replicas, 1)
    )
    return f"""global
    maxconn 2048
defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s
frontend text
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
{servers}
"""


def _shares(before: list[float], after: list[float]) -> list[float]:
    delta = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(delta) or 1.0
    return [round(x / total, 3) for x in delta]


async def bench_scale_out(fleet: Fleet, args: argparse.Namespace, out: dict[str, Any]) -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        out["scale_out"] = {"skipped": "haproxy not installed (apt-get install -y haproxy)"}
        print("  scale-out: skipped (no haproxy)", flush=True)
        return
    d = args.duration
    base = args.port + 50
    ports = [base + i for i in range(1, 5)]
    names = [f"text_r{i}" for i in range(1, 5)]
    for name, port in zip(names[:3], ports[:3], strict=True):
        fleet.start(name, "text", port, {"INFERENCE_THREADS": "1", "OMP_NUM_THREADS": "1"})
    config = fleet.workdir / "haproxy.cfg"
    config.write_text(haproxy_config(base, ports))
    fleet.others.append(
        subprocess.Popen(
            [haproxy, "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(fleet.workdir / "haproxy.log").open("wb"),
            start_new_session=True,
        )
    )
    gateway = fleet.start(
        "gateway_lb", "gateway", base + 10, gateway_env(fleet.workdir, {"text": f"http://127.0.0.1:{base}"})
    )
    fleet.wait_ready([*names[:3], "gateway_lb"])
    await asyncio.sleep(1.5)  # health checks mark the three replicas up
    headers = {"Authorization": f"Bearer {gateway_token(gateway.url)}"}
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    request = text_request("/api/predict/text")
    await load(gateway.url, request, concurrency=4, total=8, headers=headers)
    # The gateway's defaults: each pooled connection carries at most 16 requests (HAProxy in TCP
    # mode, like a Service, balances connections), and the pool is renewed every 10 s.
    result: dict[str, Any] = {"replicas_before": 3, "connection_max_age_s": 10, "connection_max_requests": 16}
    for concurrency in (4, 32):
        before = replica_counts(urls[:3])
        run = await load(gateway.url, request, concurrency=concurrency, duration_s=d, headers=headers)
        result[f"three_c{concurrency}"] = run.summary() | {"shares": _shares(before, replica_counts(urls[:3]))}

    # A fourth replica starts while load runs; shares are measured once it is up and pools have recycled.
    loop_task = asyncio.create_task(
        load(gateway.url, request, concurrency=32, duration_s=3600, headers=headers)  # stopped below
    )
    started = time.perf_counter()
    fleet.start(names[3], "text", ports[3], {"INFERENCE_THREADS": "1", "OMP_NUM_THREADS": "1"})
    await asyncio.to_thread(fleet.wait_ready, [names[3]])
    result["fourth_ready_after_s"] = round(time.perf_counter() - started, 1)
    await asyncio.sleep(11)  # one connection lifetime: every pooled connection has been reopened
    for concurrency in (32, 4):
        if concurrency == 4:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
        before = replica_counts(urls)
        if concurrency == 32:
            t0 = time.perf_counter()
            await asyncio.sleep(d)
            counted = replica_counts(urls)
            result["four_c32"] = {
                "items_per_s": round((sum(counted) - sum(before)) / (time.perf_counter() - t0), 2),
                "shares": _shares(before, counted),
            }
        else:
            await asyncio.sleep(11)  # pools opened at c32 expire; c4 opens its own
            before = replica_counts(urls)
            run = await load(gateway.url, request, concurrency=4, duration_s=d, headers=headers)
            result["four_c4"] = run.summary() | {"shares": _shares(before, replica_counts(urls))}
    one = out.get("gateway", {}).get("text_c32", {}).get("items_per_s")
    if one:
        result["four_c32_throughput_over_one_replica"] = round(result["four_c32"]["items_per_s"] / one, 2)
    even = 0.25
    result["four_within_20pct_of_even"] = all(
        abs(s - even) <= 0.2 * even for key in ("four_c32", "four_c4") for s in result[key]["shares"]
    )
    out["scale_out"] = result
    print(f"  scale-out: {json.dumps(result)}", flush=True)


# --------------------------------------------------------------------------- report


def print_table(out: dict[str, Any]) -> None:
    print(
        f"\nServing benchmark, {os.cpu_count()} CPUs, INFERENCE_THREADS={out['inference_threads']}, "
        f"load generator {out['load_generator']}"
    )
    print(
        f"{'service':<12}{'c1 it/s':>9}{'c1 p50':>8}{'c1 p95':>8}{'c32 it/s':>10}{'c32 p50':>9}{'c32 p95':>9}", end=""
    )
    print(f"{'batch it/s':>11}{'c32/c1':>8}")
    for name, r in out["services"].items():
        batch = r.get("batch", {}).get("items_per_s", float("nan"))
        print(
            f"{name:<12}{r['c1']['items_per_s']:>9.1f}{r['c1']['p50_ms']:>8.1f}{r['c1']['p95_ms']:>8.1f}"
            f"{r['c32']['items_per_s']:>10.1f}{r['c32']['p50_ms']:>9.1f}{r['c32']['p95_ms']:>9.1f}"
            f"{batch:>11.1f}{r['c32_over_c1']:>7.2f}x   CPU ms/item c1 {r['c1']['cpu_ms_per_item']:.1f}"
            f" c32 {r['c32']['cpu_ms_per_item']:.1f}"
        )
    for name, r in out["old_path"].items():
        print(
            f"{name + ' old':<12}{r['c1']['items_per_s']:>9.1f}{r['c1']['p50_ms']:>8.1f}{r['c1']['p95_ms']:>8.1f}"
            f"{r['c32']['items_per_s']:>10.1f}{r['c32']['p50_ms']:>9.1f}{r['c32']['p95_ms']:>9.1f}"
            f"   new/old c1 {r['new_over_old_c1_items_per_s']:.2f}x, c32 {r['new_over_old_c32_items_per_s']:.2f}x,"
            f" old/new CPU per item at c32 {r['old_over_new_c32_cpu_per_item']:.2f}x"
        )
    if "gateway" in out:
        g = out["gateway"]
        multimodal = (
            f"; multimodal p50 {g['multimodal_c1']['p50_ms']:.1f} ms = {g['multimodal_p50_over_slowest_p50']:.2f}x "
            f"{g['slowest_modality']}"
            if "multimodal_c1" in g
            else ""
        )
        print(
            f"gateway text: p50 {g['text_c1']['p50_ms']:.1f} ms = {g['text_p50_over_service_p50']:.2f}x service; "
            f"c32 {g['text_c32']['items_per_s']:.1f}/s = {g['text_c32_throughput_over_service']:.2f}x service"
            + multimodal
        )
    for name, r in out.get("rss", {}).items():
        print(f"{name} RSS: {r['start_mb']:.0f} MB -> {r['after_mb']:.0f} MB after {r['requests']} requests")
    s = out.get("scale_out", {})
    if "four_c32" in s:
        print(
            f"scale-out shares: 3 replicas c4 {s['three_c4']['shares']} c32 {s['three_c32']['shares']}; "
            f"4 replicas c32 {s['four_c32']['shares']} c4 {s['four_c4']['shares']}"
        )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    fleet = Fleet(workdir / "logs")
    fleet.workdir.mkdir(parents=True)
    only = set(args.only.split(","))
    out: dict[str, Any] = {
        "inference_threads": os.environ.get("INFERENCE_THREADS", "2"),
        "load_generator": load_generator(),
        "cpus": os.cpu_count(),
        "duration_s": args.duration,
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        "services": {},
        "old_path": {},
    }
    port = args.port
    modules = {"speech": 1, "text": 2, "image": 3, "fusion": 4}
    batch_1_threads = {"MAX_BATCH_SIZE": "1", "MAX_CONCURRENT_BATCHES": "8"}
    torch_runtime = {"INFERENCE_RUNTIME": "torch"}
    old_runtime = {
        "speech": {"ENCODER_RUNTIME": "numpy"},
        "text": torch_runtime,
        "image": torch_runtime,
        "fusion": {"INFERENCE_RUNTIME": "sklearn"},
    }
    try:
        for name, offset in modules.items():
            if name in only:
                fleet.start(name, name, port + offset)
        if "old" in only:
            for name, offset in (("speech", 11), ("text", 12), ("image", 13), ("fusion", 14)):
                if name in only:
                    fleet.start(f"{name}_old", name, port + offset, old_runtime[name] | batch_1_threads)
        fleet.wait_ready(list(fleet.services))
        await bench_services(fleet, args, out)
        if "gateway" in only and "text" in only:  # --only text,gateway: the gateway against the text service alone
            urls = {m: fleet.services[m].url for m in modules if m in fleet.services}
            fleet.start("gateway", "gateway", port, gateway_env(fleet.workdir, urls))
            fleet.wait_ready(["gateway"])
            await bench_gateway(fleet, args, out)
        if args.rss_requests:
            await bench_rss(fleet, args, out)
        fleet.stop_all()
        if "scaleout" in only:
            await bench_scale_out(fleet, args, out)
    finally:
        fleet.stop_all()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rss-requests", type=int, default=10_000)
    parser.add_argument("--rss-seconds", type=float, default=90.0, help="cap on each RSS run's time")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--only", default="text,image,speech,fusion,old,gateway,scaleout")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "serving.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out = asyncio.run(main_async(args))
    out["wall_s"] = round(time.perf_counter() - started, 1)
    out["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    print_table(out)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
