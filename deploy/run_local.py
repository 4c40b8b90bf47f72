"""Run the services locally: gateway :8000, speech :8001, text :8002, image :8003, fusion :8004, asr :8005.

    python deploy/run_local.py            # after `make migrate` (make run does both)

Each service is ``uvicorn --factory services.<name>.app:create_app`` in its own process, with
the gateway pointed at the others (SPEECH_URL, TEXT_URL, IMAGE_URL, FUSION_URL, ASR_URL). Services that
do not become ready (e.g. a missing model) are reported but the rest keep running. Ctrl-C or
SIGTERM stops them all. Tests reuse :func:`start_services`, :func:`wait_ready` and
:func:`stop_services` with their own ports and environment.
"""

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVICES: tuple[str, ...] = ("gateway", "speech", "text", "image", "fusion", "asr")
DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "speech": 8001,
    "text": 8002,
    "image": 8003,
    "fusion": 8004,
    "asr": 8005,
}
#: The gateway's settings naming each downstream service.
URL_SETTINGS: dict[str, str] = {
    "speech": "SPEECH_URL",
    "text": "TEXT_URL",
    "image": "IMAGE_URL",
    "fusion": "FUSION_URL",
    "asr": "ASR_URL",
}


@dataclass
class Stack:
    """Running service processes and where they listen."""

    host: str
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _log_files: list[IO[bytes]] = field(default_factory=list)

    def url(self, name: str) -> str:
        """Base URL of a service."""
        return f"http://{self.host}:{self.ports[name]}"

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The end of a service's log (when started with a log folder)."""
        path = self.logs.get(name)
        if path is None or not path.exists():
            return ""
        kept = [line for line in path.read_text(errors="replace").splitlines() if "uvicorn.access" not in line]
        return "\n".join(kept[-lines:])


def service_env(
    ports: Mapping[str, int], *, host: str = "127.0.0.1", env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for every service: ours, the downstream URLs, then ``env`` overrides."""
    result = dict(os.environ)
    result.setdefault("PYTHONUNBUFFERED", "1")
    for name, variable in URL_SETTINGS.items():
        if name in ports:
            result[variable] = f"http://{host}:{ports[name]}"
    result.update(env or {})
    return result


def server_options(env: Mapping[str, str]) -> list[str]:
    """uvicorn flags every service runs with (the container entrypoint sets the same ones).

    - ``X-Forwarded-For`` is believed only from ``FORWARDED_ALLOW_IPS`` (IPs/CIDRs of the proxies
      in front); unset or empty trusts no one. uvicorn alone would trust 127.0.0.1, so any local
      client could pick the IP the per-IP rate limits count.
    - Slow clients: ``TIMEOUT_KEEP_ALIVE_S`` for idle connections, and shared/server.py's protocol
      for ``HEADER_READ_TIMEOUT_S`` / ``BODY_READ_TIMEOUT_S`` (read from the environment).
    - uvloop and httptools: the fast event loop and parser (from ``uvicorn[standard]``).
    """
    trusted = env.get("FORWARDED_ALLOW_IPS", "").strip()
    proxy = ["--proxy-headers", "--forwarded-allow-ips", trusted] if trusted else ["--no-proxy-headers"]
    return [
        *proxy,
        "--http",
        "shared.server:HttpToolsProtocol",
        "--loop",
        "uvloop",
        "--timeout-keep-alive",
        env.get("TIMEOUT_KEEP_ALIVE_S", "5"),
        "--timeout-graceful-shutdown",
        env.get("GRACEFUL_SHUTDOWN_S", "20"),
    ]


def migrate(env: Mapping[str, str] | None = None, *, python: str = sys.executable) -> None:
    """``alembic upgrade head`` on DATABASE_URL (from ``env`` or the environment)."""
    subprocess.run([python, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=service_env({}, env=env), check=True)


def start_services(
    *,
    ports: Mapping[str, int] | None = None,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    services: Iterable[str] = SERVICES,
    log_dir: Path | None = None,
    python: str = sys.executable,
) -> Stack:
    """Start each service with uvicorn; logs go to ``log_dir/<name>.log`` or to this terminal."""
    chosen = {name: (ports or DEFAULT_PORTS)[name] for name in services}
    stack = Stack(host=host, ports=chosen)
    environment = service_env(chosen, host=host, env=env)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for name, port in chosen.items():
            command = [
                python,
                "-m",
                "uvicorn",
                "--factory",
                f"services.{name}.app:create_app",
                "--host",
                host,
                "--port",
                str(port),
                "--no-access-log",
                *server_options(environment),
            ]
            output: IO[bytes] | None = None
            if log_dir is not None:
                stack.logs[name] = log_dir / f"{name}.log"
                output = stack.logs[name].open("wb")
                stack._log_files.append(output)
            # Own session: a terminal's Ctrl-C reaches only us, and we stop the children in order.
            stack.processes[name] = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                start_new_session=True,
            )
    except BaseException:
        stop_services(stack)
        raise
    return stack


def _readiness(client: httpx.Client, stack: Stack, name: str) -> tuple[bool, str]:
    process = stack.processes[name]
    if process.poll() is not None:
        return True, f"exited with code {process.returncode}"
    try:
        response = client.get(f"{stack.url(name)}/readyz")
    except httpx.HTTPError:
        return False, "not answering yet"
    if response.status_code == 200:
        return True, ""
    try:
        return False, str(response.json().get("detail", response.status_code))
    except ValueError:
        return False, f"HTTP {response.status_code}"


def wait_ready(stack: Stack, *, timeout_s: float = 60.0, interval_s: float = 0.5) -> dict[str, str]:
    """Poll every service's /readyz; return {name: reason} for those not ready in time (empty = all ready).

    A service whose process exits is reported at once; the others are still awaited.
    """
    pending = set(stack.processes)
    last_reason: dict[str, str] = {}
    problems: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for name in sorted(pending):
                done, reason = _readiness(client, stack, name)
                if done:
                    pending.discard(name)
                    if reason:
                        problems[name] = reason
                else:
                    last_reason[name] = reason
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(interval_s)
    problems.update({name: last_reason[name] for name in pending})
    return dict(sorted(problems.items()))


def stop_services(stack: Stack, *, timeout_s: float = 10.0) -> None:
    """SIGTERM every service (uvicorn shuts down gracefully), then SIGKILL stragglers."""
    for process in stack.processes.values():
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
    deadline = time.monotonic() + timeout_s
    for process in stack.processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for log in stack._log_files:
        log.close()
    stack._log_files.clear()


def main(argv: list[str] | None = None) -> int:
    """Start everything, report readiness, wait for Ctrl-C/SIGTERM, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--base-port", type=int, default=8000, help="gateway port; the others follow (+1..+5)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    parser.add_argument("--migrate", action="store_true", help="run alembic upgrade head first")
    parser.add_argument(
        "--services", default=",".join(SERVICES), help="comma-separated subset to start (default: all six)"
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.services.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        parser.error(f"unknown service(s): {', '.join(unknown)}")

    if args.migrate:
        migrate()
    ports = {name: args.base_port + offset for offset, name in enumerate(SERVICES)}
    # Explicit: trust no forwarded headers locally, and one fresh service-to-service token per
    # run (unless the environment sets them), so the inference ports refuse direct calls.
    env = {
        "FORWARDED_ALLOW_IPS": os.environ.get("FORWARDED_ALLOW_IPS", ""),
        "INTERNAL_TOKEN": os.environ.get("INTERNAL_TOKEN") or secrets.token_urlsafe(32),
    }
    stack = start_services(ports=ports, host=args.host, services=chosen, env=env)

    def on_signal(signum: int, _: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        problems = wait_ready(stack, timeout_s=args.timeout)
        for name in chosen:
            status = f"NOT READY: {problems[name]}" if name in problems else "ready"
            print(f"  {name:8} {stack.url(name):28} {status}", flush=True)
        if "gateway" in stack.ports:
            gateway = stack.url("gateway")
            print(f"\nWeb page: {gateway}/\nAPI docs: {gateway}/docs", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        while True:
            for name, process in stack.processes.items():
                if process.poll() is not None and name not in problems:
                    print(f"{name} exited with code {process.returncode}", flush=True)
                    problems[name] = "exited"
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    finally:
        stop_services(stack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
