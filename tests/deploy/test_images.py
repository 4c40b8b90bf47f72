"""Every service image, built and run by replaying deploy/Dockerfile on the host (see imagesim.py).

Each image gets a fresh virtualenv with only its service's extra, its own files copied through
.dockerignore, and is started with its ENTRYPOINT; its HEALTHCHECK must pass (/readyz 200),
which proves the container's dependency set and model files are complete. The virtualenvs
are cached in ~/.cache/emotion-deploy-images keyed by the service's requirements, so only the
first run installs torch / TensorFlow (minutes); later runs take about a minute or two.
The gateway is migrated (the image's `alembic upgrade head`) into a scratch MariaDB database.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.settings import INTERNAL_TOKEN_HEADER
from tests.deploy.buildsim import REPO, SERVICES
from tests.deploy.imagesim import Build, Container, build, container, context_for, snapshot

pytestmark = [pytest.mark.e2e, pytest.mark.mysql]

#: ENVIRONMENT=production (the image default) requires it; the gateway sends it, the services check it.
INTERNAL_TOKEN = "deploy-test-internal-" + "t" * 32

INFERENCE = ("speech", "text", "image", "fusion", "asr")
MYSQL_URL = os.environ.get("DEPLOY_TEST_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306/emotion_deploy_check")
REDIS_URL = os.environ.get("DEPLOY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
READY_DEADLINE_S = 420.0
#: Frameworks that must not be in an image (besides the image_check rules run during the build).
MUST_NOT_CARRY = {
    "gateway": {"torch", "tensorflow", "tensorflow-cpu", "scikit-learn"},
    "speech": {"torch", "ctranslate2"},
    "text": {"tensorflow", "tensorflow-cpu"},
    "image": {"tensorflow", "tensorflow-cpu"},
    "fusion": {"torch", "tensorflow", "tensorflow-cpu"},
    "asr": {"torch", "tensorflow", "tensorflow-cpu", "scikit-learn"},
}
MUST_CARRY = {
    "gateway": {"alembic", "asyncmy", "redis"},
    "speech": {"tensorflow-cpu"},
    "text": {"torch"},
    "image": {"torch", "opencv-python-headless"},
    "fusion": {"scikit-learn", "onnxruntime", "skl2onnx"},
    "asr": {"ctranslate2", "faster-whisper", "av"},
}

DATABASE_SCRIPT = """
import asyncio, sys
import asyncmy
from sqlalchemy.engine import make_url

url = make_url(sys.argv[1])

async def main() -> None:
    conn = await asyncmy.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "")
    async with conn.cursor() as cursor:
        await cursor.execute(f"DROP DATABASE IF EXISTS `{url.database}`")
        if sys.argv[2] == "create":
            await cursor.execute(f"CREATE DATABASE `{url.database}` CHARACTER SET utf8mb4")
    conn.close()

asyncio.run(main())
"""


@dataclass
class Outcome:
    build: Build
    distributions: dict[str, str] = field(default_factory=dict)
    container: Container | None = None
    not_ready: str | None = "not started"
    probes: dict[str, tuple[int, Any]] = field(default_factory=dict)
    rss_mib: float | None = None
    exit_code: int | None = None
    written: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def distributions(venv: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, re; "
        "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version for d in m.distributions()}))"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def probe(outcome: Outcome) -> None:
    assert outcome.container is not None
    base = f"http://127.0.0.1:{outcome.container.port}"
    with httpx.Client(base_url=base, timeout=10, headers={INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN}) as client:
        for path in ("/livez", "/readyz", "/metrics"):
            response = client.get(path)
            body = response.json() if path != "/metrics" else response.text
            outcome.probes[path] = (response.status_code, body)
    outcome.rss_mib = outcome.container.rss_mib()


def start(outcomes: dict[str, Outcome], service: str, context: Path, work: Path, env: dict[str, str]) -> None:
    outcome = outcomes[service]
    if outcome.build.error:
        outcome.not_ready = "build failed"
        return
    outcome.container = container(service, outcome.build, context, work, {"INTERNAL_TOKEN": INTERNAL_TOKEN, **env})
    outcome.notes["snapshot"] = snapshot(outcome.build.venv, outcome.container.rootfs.path("/app"))
    outcome.container.start()
    outcome.notes["started"] = time.monotonic()


def finish(outcome: Outcome) -> None:
    if outcome.container is None or outcome.container.process is None or "snapshot" not in outcome.notes:
        return
    outcome.exit_code = outcome.container.stop()
    after = snapshot(outcome.build.venv, outcome.container.rootfs.path("/app"))
    before = outcome.notes.pop("snapshot")
    outcome.written = sorted(path for path, stat in after.items() if before.get(path) != stat)


@contextlib.contextmanager
def recorded(outcome: Outcome) -> Iterator[None]:
    """Keep one service's unexpected error on its outcome, so the other services still run."""
    try:
        yield
    except Exception as exc:
        outcome.not_ready = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"


def database(venv: Path, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", DATABASE_SCRIPT, MYSQL_URL, action],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("images")
    context = context_for(work / "context")
    outcomes: dict[str, Outcome] = {}
    for service in SERVICES:
        requirements = subprocess.run(
            [sys.executable, str(REPO / "deploy" / "extra_requirements.py"), service],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        started = time.monotonic()
        outcomes[service] = Outcome(build(service, context, requirements))
        outcomes[service].notes["build_s"] = round(time.monotonic() - started, 1)
        if not outcomes[service].build.error:
            outcomes[service].distributions = distributions(outcomes[service].build.venv)
    try:
        # The modality services load their models side by side, as `docker compose up` does.
        for service in INFERENCE:
            with recorded(outcomes[service]):
                start(outcomes, service, context, work, {})
        for service in INFERENCE:
            outcome = outcomes[service]
            if outcome.container is not None and outcome.container.process is not None:
                with recorded(outcome):
                    remaining = READY_DEADLINE_S - (time.monotonic() - outcome.notes["started"])
                    outcome.not_ready = outcome.container.wait_healthy(max(remaining, 5.0))
                    outcome.notes["ready_s"] = round(time.monotonic() - outcome.notes["started"], 1)
                    if outcome.not_ready is None:
                        probe(outcome)
        with recorded(outcomes["gateway"]):
            run_gateway(outcomes["gateway"], outcomes, context, work)
    finally:
        for outcome in outcomes.values():
            with recorded(outcome):
                finish(outcome)
    summary = {
        name: {
            "build_s": o.notes.get("build_s"),
            "ready_s": o.notes.get("ready_s"),
            "rss_mib": None if o.rss_mib is None else round(o.rss_mib),
        }
        for name, o in outcomes.items()
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nservice images (build s, ready s, RSS MiB): {json.dumps(summary)}")
    yield outcomes


def run_gateway(outcome: Outcome, outcomes: dict[str, Outcome], context: Path, work: Path) -> None:
    if outcome.build.error:
        outcome.not_ready = "build failed"
        return
    database_url = MYSQL_URL
    created = database(outcome.build.venv, "create")
    if created.returncode != 0:
        if os.environ.get("ALLOW_NO_MYSQL") != "1":
            outcome.not_ready = f"could not create the scratch database: {created.stderr[-1500:]}"
            return
        database_url = f"sqlite+aiosqlite:///{work / 'gateway.db'}"  # same escape hatch as tests/gateway
    upstream = {
        f"{name.upper()}_URL": f"http://127.0.0.1:{outcomes[name].container.port}"
        for name in INFERENCE
        if outcomes[name].container is not None
    }
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "deploy-test-" + "s" * 40,
        "RATE_LIMIT_STORAGE_URI": REDIS_URL,
        **upstream,
    }
    try:
        gateway = container("gateway", outcome.build, context, work, {"INTERNAL_TOKEN": INTERNAL_TOKEN, **env})
        waiting = gateway.run(["python", "wait_for_migrations.py", "--timeout", "0"])
        migrated = gateway.run(["alembic", "upgrade", "head"])
        waited = gateway.run(["python", "wait_for_migrations.py", "--timeout", "30", "--interval", "1"])
        outcome.notes["migration"] = {
            "before": (waiting.returncode, waiting.stderr[-500:]),
            "migrate": (migrated.returncode, (migrated.stdout + migrated.stderr)[-1500:]),
            "after": (waited.returncode, waited.stdout + waited.stderr[-500:]),
        }
        if migrated.returncode != 0:
            outcome.not_ready = "migration failed"
            return
        start(outcomes, "gateway", context, work, env)
        assert outcome.container is not None
        outcome.not_ready = outcome.container.wait_healthy(READY_DEADLINE_S / 2)
        outcome.notes["ready_s"] = round(time.monotonic() - outcome.notes["started"], 1)
        if outcome.not_ready is None:
            probe(outcome)
    finally:
        finish(outcome)
        if database_url == MYSQL_URL:
            database(outcome.build.venv, "drop")


@pytest.mark.parametrize("service", SERVICES)
def test_image_builds_with_only_its_own_extra(deployment: dict[str, Outcome], service: str) -> None:
    outcome = deployment[service]
    assert outcome.build.error is None, outcome.build.error
    assert any(line == f"image check ({service}): ok" for line in outcome.build.log), outcome.build.log
    installed = outcome.distributions
    assert not MUST_NOT_CARRY[service] & set(installed), MUST_NOT_CARRY[service] & set(installed)
    assert MUST_CARRY[service] <= set(installed)
    assert not [name for name in installed if name.startswith("nvidia-")]
    assert "emotion-platform" in installed


@pytest.mark.parametrize("service", SERVICES)
def test_service_becomes_healthy_in_its_image(deployment: dict[str, Outcome], service: str) -> None:
    outcome = deployment[service]
    assert outcome.not_ready is None, outcome.not_ready
    assert outcome.probes["/livez"] == (200, {"status": "ok"})
    assert outcome.probes["/readyz"] == (200, {"status": "ready"})
    status, metrics = outcome.probes["/metrics"]
    assert status == 200 and "# TYPE" in metrics


@pytest.mark.parametrize("service", SERVICES)
def test_service_stops_on_sigterm_and_writes_nothing_into_its_image(
    deployment: dict[str, Outcome], service: str
) -> None:
    outcome = deployment[service]
    assert outcome.container is not None, outcome.not_ready
    # uvicorn re-raises the SIGTERM after a clean shutdown, so -15 (Docker's 143) is a clean stop too.
    assert outcome.exit_code in {0, -signal.SIGTERM}, outcome.container.log_tail()
    assert "Application shutdown complete" in outcome.container.log_tail(), outcome.container.log_tail()
    # Kubernetes mounts the root filesystem read-only: only /tmp may be written.
    assert outcome.written == []


def test_gateway_waits_for_migrations_then_migrates_in_its_image(deployment: dict[str, Outcome]) -> None:
    migration = deployment["gateway"].notes.get("migration")
    assert migration is not None, deployment["gateway"].not_ready
    before_rc, before_err = migration["before"]
    assert before_rc == 1 and "gave up" in before_err, "an empty database is not at head"
    assert migration["migrate"][0] == 0, migration["migrate"][1]
    assert migration["after"][0] == 0 and "at head" in migration["after"][1]
