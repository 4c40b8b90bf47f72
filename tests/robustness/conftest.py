"""The speech and image services as real processes (uvicorn, as deployed), so memory is measured
on the process that serves the request: peak RSS from /proc/<pid>/status (VmHWM), reset per case
through /proc/<pid>/clear_refs.
"""

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("run_local", ROOT / "deploy" / "run_local.py")
assert _spec is not None and _spec.loader is not None
run_local = importlib.util.module_from_spec(_spec)
sys.modules["run_local"] = run_local  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(run_local)

READY_TIMEOUT_S = 120.0
INTERNAL_TOKEN = "robustness-internal-token"
#: Sent on every request: the inference services require it once INTERNAL_TOKEN is set.
HEADERS = {"X-Internal-Token": INTERNAL_TOKEN}
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "INFERENCE_THREADS": "1",
}


@dataclass
class Process:
    """A running service: its URL and the pid whose memory is measured."""

    name: str
    url: str
    pid: int

    def status_kb(self, field: str) -> int:
        """A ``VmXxx`` line of /proc/<pid>/status, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"{field} not in /proc/{self.pid}/status")

    def reset_peak(self) -> int:
        """Reset VmHWM to the current RSS (``echo 5 > clear_refs``); returns that RSS in KiB."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self.status_kb("VmRSS")

    def peak_growth_mb(self, baseline_kb: int) -> float:
        """Peak RSS since :meth:`reset_peak` above ``baseline_kb``, in MiB."""
        return (self.status_kb("VmHWM") - baseline_kb) / 1024


@pytest.fixture(scope="session")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Process]]:
    """The five services, each in its own uvicorn process with the shipped models (gateway on SQLite)."""
    tmp = tmp_path_factory.mktemp("robustness")
    env = {
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "INTERNAL_TOKEN": INTERNAL_TOKEN,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/robustness.db",
        "RATE_LIMIT_AUTH": "10000/minute",
        "RATE_LIMIT_USER": "100000/minute",
        "RATE_LIMIT_IP": "100000/minute",
        **THREAD_ENV,
    }
    run_local.migrate(env)
    names = list(run_local.SERVICES)
    ports = {name: free_port() for name in names}
    stack = run_local.start_services(ports=ports, env=env, services=names, log_dir=tmp / "logs")
    try:
        problems = run_local.wait_ready(stack, timeout_s=READY_TIMEOUT_S)
        if problems:
            logs = "\n".join(f"--- {name}\n{stack.log_tail(name)}" for name in problems)
            pytest.fail(f"services not ready: {problems}\n{logs}")
        yield {name: Process(name, stack.url(name), stack.processes[name].pid) for name in names}
    finally:
        run_local.stop_services(stack)


@pytest.fixture(scope="session")
def speech(processes: dict[str, Process]) -> Process:
    return processes["speech"]


@pytest.fixture(scope="session")
def image(processes: dict[str, Process]) -> Process:
    return processes["image"]


def assert_error_shape(response: httpx.Response, expected: frozenset[int] | set[int]) -> None:
    """A refusal in the one error shape, with the request id the response header carries."""
    assert response.status_code in expected, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    assert body.get("request_id"), body
    assert response.headers.get("x-request-id") == body["request_id"]
    # No server internals leak into the message.
    assert "object at 0x" not in body["detail"] and "Traceback" not in body["detail"], body["detail"]


def assert_ready(client: httpx.Client, url: str) -> None:
    response = client.get(f"{url}/readyz")
    assert response.status_code == 200, response.text
