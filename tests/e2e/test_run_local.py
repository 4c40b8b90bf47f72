"""deploy/run_local.py: start, readiness report, stop, and the command line's signal handling."""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("run_local", ROOT / "deploy" / "run_local.py")
assert _spec is not None and _spec.loader is not None
run_local = importlib.util.module_from_spec(_spec)
sys.modules["run_local"] = run_local
_spec.loader.exec_module(run_local)


def gateway_env(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/local.db", "LOG_LEVEL": "WARNING"}


def test_start_wait_stop_a_migrated_gateway(tmp_path):
    env = gateway_env(tmp_path)
    run_local.migrate(env)
    stack = run_local.start_services(
        ports={"gateway": free_port()}, env=env, services=["gateway"], log_dir=tmp_path / "logs"
    )
    try:
        assert run_local.wait_ready(stack, timeout_s=30) == {}
        assert httpx.get(f"{stack.url('gateway')}/readyz").json() == {"status": "ready"}
    finally:
        run_local.stop_services(stack)
    assert all(p.poll() is not None for p in stack.processes.values())
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.url('gateway')}/livez")


def test_a_service_that_cannot_start_is_reported(tmp_path):
    env = gateway_env(tmp_path)  # not migrated: the gateway refuses to start
    stack = run_local.start_services(
        ports={"gateway": free_port()}, env=env, services=["gateway"], log_dir=tmp_path / "logs"
    )
    try:
        start = time.monotonic()
        problems = run_local.wait_ready(stack, timeout_s=30)
        assert time.monotonic() - start < 25
    finally:
        run_local.stop_services(stack)
    assert problems["gateway"].startswith("exited with code")
    assert "not migrated" in stack.log_tail("gateway", lines=200)


def test_sigterm_stops_everything(tmp_path):
    env = {**os.environ, **gateway_env(tmp_path)}
    port = free_port()
    command = [sys.executable, str(ROOT / "deploy" / "run_local.py"), "--migrate", "--services", "gateway"]
    process = subprocess.Popen(
        [*command, "--base-port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert process.stdout is not None
        lines = []
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            line = process.stdout.readline().decode()
            lines.append(line)
            if "Ctrl-C stops everything" in line or not line:
                break
        assert any(f"http://127.0.0.1:{port}/docs" in line for line in lines), lines
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/livez")
