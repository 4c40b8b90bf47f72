"""The gateway's own cost per ``/api/predict/text`` request, against a stub text service (seconds to run).

The stub answers a canned prediction from a bare ASGI callable, so nearly all the CPU time and
latency measured belongs to the gateway: auth, rate limits, the upstream call, the history
write and the response. Both run as real uvicorn processes on loopback (as ``make bench`` does),
the gateway on SQLite or the database given by ``--database-url``.

    python bench/gateway_cost.py [--requests 400] [--database-url mysql+asyncmy://root@127.0.0.1:3306/bench]

Prints (and with ``--json`` writes) gateway CPU ms per request at concurrency 1 and 32, p50/p95
latency at c1, requests/s at c32, and the stub's own p50 for reference. ``--profile out.txt``
instead runs the gateway in process under cProfile (same app, stub behind httpx.MockTransport).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving import Fleet, gateway_env, gateway_token, load, text_request  # noqa: E402

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
STUB_BODY = json.dumps(
    {
        "label": "happy",
        "probabilities": dict(zip(LABELS, (0.05, 0.05, 0.05, 0.6, 0.1, 0.1, 0.05), strict=True)),
        "model": {"name": "stub", "version": "1"},
    }
).encode()


async def stub_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A text service that answers every POST with the same prediction (and 200 on probes)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more and scope["method"] == "POST":
        more = (await receive()).get("more_body", False)
    body = STUB_BODY if scope["path"] == "/predict" else b'{"status":"ready"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


#: The requests (runs of a given count: these always go through httpx, see ``bench.serving.load``).
TEXT = text_request("/api/predict/text")
TEXT_STUB = text_request("/predict")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="gateway-cost-"))
    fleet = Fleet(workdir)
    try:
        fleet.others.append(_start_stub(args.port + 2, workdir))
        env = gateway_env(workdir, {"text": f"http://127.0.0.1:{args.port + 2}"})
        if args.database_url:
            env["DATABASE_URL"] = args.database_url
        gateway = fleet.start("gateway", "gateway", args.port, env)
        fleet.wait_ready(["gateway"])
        _wait_stub(args.port + 2)
        headers = {"Authorization": f"Bearer {gateway_token(gateway.url)}"}
        await load(gateway.url, TEXT, concurrency=4, total=50, headers=headers)  # warm-up
        stub_c1 = (await load(f"http://127.0.0.1:{args.port + 2}", TEXT_STUB, concurrency=1, total=200)).summary()
        out: dict[str, Any] = {"stub_c1": stub_c1}
        for concurrency in (1, 32):
            before = gateway.cpu_s()
            run = await load(gateway.url, TEXT, concurrency=concurrency, total=args.requests, headers=headers)
            spent = gateway.cpu_s() - before
            out[f"c{concurrency}"] = run.summary() | {"cpu_ms_per_item": round(1000 * spent / max(1, run.requests), 2)}
        return out
    finally:
        fleet.stop_all()


def _start_stub(port: int, workdir: Path) -> Any:
    import subprocess

    command = [sys.executable, "-m", "uvicorn", "bench.gateway_cost:stub_app", "--port", str(port), "--no-access-log"]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=(workdir / "stub.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_stub(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("stub did not start")


async def profile(args: argparse.Namespace) -> None:
    """The gateway in process (ASGITransport), upstream through MockTransport, under cProfile."""
    from asgi_lifespan import LifespanManager

    from services.gateway.app import create_app
    from services.gateway.fanout import Fanout
    from services.gateway.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="gateway-profile-"))
    env = gateway_env(workdir, {"text": "http://text.stub"})
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    settings = Settings(_env_file=None, log_level="WARNING", **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg]
    app = create_app(settings)
    upstream = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, content=STUB_BODY)), timeout=10
    )
    async with LifespanManager(app):
        app.state.fanout = Fanout(upstream, settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway") as client:
            user = {"username": "bench", "email": "bench@example.com", "password": "bench-password-1"}
            await client.post("/api/register", json=user)
            token = (await client.post("/api/login", data={"username": "bench", "password": user["password"]})).json()
            client.headers["Authorization"] = f"Bearer {token['access_token']}"
            for i in range(50):
                assert (await TEXT.send(client, i)).status_code == 200
            start = time.process_time()
            profiler = cProfile.Profile()
            profiler.enable()
            for i in range(args.requests):
                await TEXT.send(client, i)
            profiler.disable()
            spent = time.process_time() - start
    print(f"in process: {1000 * spent / args.requests:.2f} CPU ms per request (client included, profiled)")
    with open(args.profile, "w") as stream:
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(80)
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(40)
    print(f"wrote {args.profile}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--port", type=int, default=18700)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--profile", help="profile in process and write pstats text here")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.profile:
        asyncio.run(profile(args))
        return 0
    out = asyncio.run(measure(args))
    out["load_average"] = [round(x, 1) for x in os.getloadavg()]
    for key in ("c1", "c32"):
        r = out[key]
        print(
            f"gateway {key}: {r['cpu_ms_per_item']:.2f} CPU ms/request, p50 {r['p50_ms']:.2f} ms, "
            f"p95 {r['p95_ms']:.2f} ms, {r['items_per_s']:.1f} req/s, errors {r['errors']}"
        )
    print(f"stub alone c1: p50 {out['stub_c1']['p50_ms']:.2f} ms; load average {out['load_average']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
