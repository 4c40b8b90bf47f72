"""Browser tests: Debian's Chromium (Playwright) against a real gateway process and stub services.

The gateway runs as ``uvicorn`` on a migrated temporary SQLite database; the inference services
are ``stub_services`` in a second process. Every request to a host other than 127.0.0.1 is
blocked and recorded, and each test fails if one was attempted. Screenshots of the main states
go to ``tests/browser/artifacts/`` (git-ignored).
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import free_port

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
PASSWORD = "correct horse battery"

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium", allow_module_level=True)

# Generous waits: the suite shares small CI machines; a real failure still fails, only later.
playwright_api.expect.set_options(timeout=15_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


def _start(module: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "--factory", module, "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Stack:
    """The running gateway (and the stubs behind it)."""

    url: str

    def register(self, prefix: str = "user") -> tuple[str, str]:
        """A new account via the API: (username, bearer token)."""
        username = f"{prefix}{uuid.uuid4().hex[:8]}"
        body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        assert httpx.post(f"{self.url}/api/register", json=body).status_code == 201
        token = httpx.post(f"{self.url}/api/login", data={"username": username, "password": PASSWORD}).json()
        return username, token["access_token"]


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Stub services and a migrated gateway, each a real uvicorn process."""
    tmp = tmp_path_factory.mktemp("browser-stack")
    stub_port, gateway_port = free_port(), free_port()
    stubs_url = f"http://127.0.0.1:{stub_port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    stubs = _start("tests.browser.stub_services:create_app", stub_port, env, tmp / "stubs.log")
    gateway_env = {
        **env,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/gateway.db",
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "false",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_USER": "10000/minute",
        "RATE_LIMIT_IP": "10000/minute",
        "RATE_LIMIT_AUTH": "10000/minute",
        "TEXT_URL": f"{stubs_url}/text",
        "SPEECH_URL": f"{stubs_url}/speech",
        "IMAGE_URL": f"{stubs_url}/image",
        "FUSION_URL": f"{stubs_url}/fusion",
    }
    # Migrated the way `make migrate` does it, before the gateway starts (it refuses an un-migrated DB).
    migrate = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        check=False,
        cwd=ROOT,
        env=gateway_env,
        capture_output=True,
        text=True,
    )
    if migrate.returncode != 0:
        _stop(stubs)
        raise RuntimeError(f"alembic upgrade head failed:\n{migrate.stdout}{migrate.stderr}")
    gateway = _start("services.gateway.app:create_app", gateway_port, gateway_env, tmp / "gateway.log")
    try:
        _wait_ready(f"{stubs_url}/text/readyz", stubs, tmp / "stubs.log")
        _wait_ready(f"http://127.0.0.1:{gateway_port}/readyz", gateway, tmp / "gateway.log")
        yield Stack(url=f"http://127.0.0.1:{gateway_port}")
    finally:
        _stop(gateway)
        _stop(stubs)


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless; Playwright never downloads a browser of its own.

    Package scope, not session: Playwright's sync API holds an event loop on this thread while it
    runs, which pytest-asyncio's async tests elsewhere in the suite could not start under.
    """
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Watch:
    """What the page tried that it should not have: remote requests, console errors."""

    remote_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    #: Substrings of console errors a test expects (each must be explained where it is allowed).
    allowed_console: list[str] = field(default_factory=list)


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def context(browser, stack: Stack, watch: Watch) -> Iterator[object]:
    """A fresh browser profile per test; any non-local request is aborted and recorded."""
    ctx = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)

    def guard(route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            watch.remote_requests.append(route.request.url)
            route.abort()

    ctx.route("**/*", guard)
    yield ctx
    ctx.close()
    assert watch.remote_requests == [], f"the page tried to reach the network: {watch.remote_requests}"


@pytest.fixture
def page(context, watch: Watch) -> Iterator[object]:
    """A page whose console errors (script errors, CSP violations) fail the test."""
    tab = context.new_page()
    tab.set_default_timeout(20_000)

    def on_console(message) -> None:
        # An HTTP error status the page handles (422, 404, 429...) is logged by Chromium too: not a bug.
        if message.type != "error" or "Failed to load resource" in message.text:
            return
        if not any(allowed in message.text for allowed in watch.allowed_console):
            watch.console_errors.append(message.text)

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: watch.console_errors.append(f"uncaught: {error}"))
    yield tab
    assert watch.console_errors == [], watch.console_errors


@pytest.fixture(scope="session")
def shot() -> Callable[..., None]:
    """``shot(page, "name")`` saves a (full-page) screenshot as a test artefact."""
    ARTIFACTS.mkdir(exist_ok=True)

    def save(tab, name: str, *, full_page: bool = True) -> None:
        tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page, timeout=30_000)

    return save


def login(page, username: str, password: str = PASSWORD) -> None:
    """Log in through the form and wait for the dashboard."""
    page.goto("/")
    page.get_by_label("Username or email").fill(username)
    page.locator("#login-password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.locator("#who").filter(has_text=username).wait_for()
