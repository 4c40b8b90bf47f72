"""Fault injection: the services as real processes under a short multimodal load; the image service
is killed (SIGKILL) and restarted mid-run.

Asserted: the gateway never answers 5xx; while image is down, requests still succeed on the other
modalities (image reported as an error); after the restart image succeeds again; and every 2xx
prediction is stored exactly once (the history API lists exactly the ids that were answered).
"""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.test_services_e2e import PASSWORD, grey_png, run_local, tone_wav

pytestmark = pytest.mark.e2e

SERVICES = ("gateway", "text", "image", "speech", "fusion")
READY_TIMEOUT_S = 120.0
WORKERS = 2
PHASE_S = 5.0
INTERNAL_TOKEN = "fault-injection-internal-token"


@dataclass
class Outcome:
    phase: str
    status: int
    body: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("faults")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/faults.db",
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_AUTH": "1000/minute",
        "RATE_LIMIT_USER": "100000/minute",
        "RATE_LIMIT_IP": "100000/minute",
        "INTERNAL_TOKEN": INTERNAL_TOKEN,
        "OMP_NUM_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    run_local.migrate(env)
    return {"env": env, "logs": tmp / "logs"}


@pytest.fixture(scope="module")
def stack(environment: dict[str, Any]) -> Iterator[Any]:
    ports = {name: free_port() for name in SERVICES}
    stack = run_local.start_services(
        ports=ports, env=environment["env"], services=SERVICES, log_dir=environment["logs"]
    )
    try:
        problems = run_local.wait_ready(stack, timeout_s=READY_TIMEOUT_S)
        if problems:
            pytest.fail(f"services not ready: {problems}\n" + "\n".join(stack.log_tail(n) for n in problems))
        yield stack
    finally:
        run_local.stop_services(stack)


def _token(base_url: str) -> str:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        user = {"username": "faults", "email": "faults@example.com", "password": PASSWORD}
        assert http.post("/api/register", json=user).status_code == 201
        response = http.post("/api/login", data={"username": "faults", "password": PASSWORD})
        return str(response.json()["access_token"])


def test_killing_and_restarting_a_modality_service(stack: Any, environment: dict[str, Any]) -> None:
    base = stack.url("gateway")
    headers = {"Authorization": f"Bearer {_token(base)}"}
    audio, image = tone_wav(1.0), grey_png()
    phase = ["before"]
    stop = threading.Event()
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def load() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            while not stop.is_set():
                current = phase[0]
                try:
                    response = http.post(
                        "/api/predict/multimodal?detect=never",
                        data={"text": "I am so happy and grateful today!"},
                        files={"audio": ("a.wav", audio, "audio/wav"), "image": ("f.png", image, "image/png")},
                    )
                    outcome = Outcome(current, response.status_code, response.json())
                except httpx.HTTPError as exc:  # the gateway itself must never drop a request
                    outcome = Outcome(current, 599, {"error": repr(exc)})
                with lock:
                    outcomes.append(outcome)

    workers = [threading.Thread(target=load) for _ in range(WORKERS)]
    restarted = None
    try:
        for worker in workers:
            worker.start()
        time.sleep(PHASE_S)
        image_process = stack.processes["image"]
        image_process.kill()
        image_process.wait()
        phase[0] = "down"
        time.sleep(PHASE_S)
        phase[0] = "restarting"
        restarted = run_local.start_services(
            ports={"image": stack.ports["image"]},
            env=environment["env"],
            services=["image"],
            log_dir=environment["logs"] / "restart",
        )
        assert run_local.wait_ready(restarted, timeout_s=READY_TIMEOUT_S) == {}
        phase[0] = "after"
        time.sleep(PHASE_S)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=90)
        if restarted is not None:
            run_local.stop_services(restarted)

    server_errors = [o for o in outcomes if o.status >= 500]
    assert not server_errors, server_errors[:3]
    assert all(o.status == 200 for o in outcomes), [(o.phase, o.status, o.body) for o in outcomes if o.status != 200]

    def modality(o: Outcome, name: str) -> str:
        return str(o.body["modalities"][name]["status"])

    down = [o for o in outcomes if o.phase == "down"]
    assert down, "no request was made while the image service was down"
    # While image was down, the other modalities still answered and the request succeeded.
    assert all(modality(o, "image") == "error" and modality(o, "text") == "ok" for o in down)
    assert all(o.body["fused"] is not None for o in down), [o.body.get("fusion_error") for o in down]
    after = [o for o in outcomes if o.phase == "after"]
    assert after and any(modality(o, "image") == "ok" for o in after)
    assert any(modality(o, "image") == "ok" for o in outcomes if o.phase == "before")

    # Every 2xx prediction is stored exactly once.
    answered = [int(o.body["id"]) for o in outcomes]
    assert len(answered) == len(set(answered))
    stored: list[int] = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        while True:
            page = http.get("/api/predictions", params={"limit": 100, "offset": len(stored)}).json()
            stored += [int(item["id"]) for item in page["items"]]
            if len(stored) >= page["total"] or not page["items"]:
                break
    assert sorted(stored) == sorted(answered)
