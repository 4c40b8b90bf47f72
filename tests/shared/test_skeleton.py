"""The inference-service skeleton: the model lifespan, shared dependencies, internal token, CSP, 500s and 422s."""

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, SecretStr, ValidationError

from shared.deps import get_model, get_settings
from shared.errors import MAX_VALIDATION_ERRORS
from shared.http import make_client
from shared.service import DEFAULT_CSP, DOCS_CSP, create_inference_app, redact_paths
from shared.settings import INTERNAL_TOKEN_HEADER, BaseServiceSettings

TOKEN = "t" * 40


@dataclass
class Toy:
    name: str = "toy"
    version: str = "1"
    warmed: bool = False


ToyDep = Annotated[Toy, Depends(get_model)]
SettingsDep = Annotated[BaseServiceSettings, Depends(get_settings)]


class Numbers(BaseModel):
    values: list[int]


router = APIRouter()


@router.get("/model", operation_id="which_model")
async def which_model(model: ToyDep, settings: SettingsDep) -> dict[str, object]:
    return {"name": model.name, "warmed": model.warmed, "environment": settings.environment}


@router.post("/sum", operation_id="sum_numbers")
async def sum_numbers(body: Numbers) -> dict[str, int]:
    return {"sum": sum(body.values)}


@router.get("/boom", operation_id="boom")
async def boom() -> None:
    raise RuntimeError("secret internals at /srv/app/secret.py")


def build(
    load=Toy,
    *,
    warmup=None,
    while_ready=None,
    token: str | None = None,
    environment: str = "test",
) -> FastAPI:
    settings = BaseServiceSettings(
        environment=environment, log_json=False, internal_token=SecretStr(token) if token else None
    )
    return create_inference_app(
        name="toy",
        title="Toy",
        description="test service",
        version="0",
        settings=settings,
        load=load,
        warmup=warmup,
        while_ready=while_ready,
        routers=[router],
        tag_description="A toy model",
        model_title="Toy",
    )


@asynccontextmanager
async def running(app: FastAPI, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://toy", headers=headers) as client:
            yield client


async def test_ready_after_load_and_warmup_and_model_reaches_routes() -> None:
    def warm(model: Toy) -> None:
        model.warmed = True

    async with running(build(warmup=warm)) as client:
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        assert (await client.get("/model")).json() == {"name": "toy", "warmed": True, "environment": "test"}


@pytest.mark.parametrize("stage", ["load", "warmup"])
async def test_any_exception_is_a_not_ready_reason_without_paths(stage: str) -> None:
    class KerasLikeError(Exception):
        pass

    def fail(*_: object) -> Toy:
        raise KerasLikeError("cannot read /srv/models/speech/model.keras: bad zip")

    app = build(load=fail) if stage == "load" else build(warmup=fail)
    async with running(app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["code"] == "not_ready"
        assert "KerasLikeError" in body["detail"]
        assert "model.keras" in body["detail"]
        assert "/srv" not in body["detail"]
        predict = await client.get("/model")
        assert predict.status_code == 503
        assert predict.json()["code"] == "model_not_ready"
        assert predict.json()["detail"].startswith("Toy model is not loaded: ")
        assert "/srv" not in predict.text
        assert (await client.get("/livez")).status_code == 200


async def test_not_ready_until_warmup_finishes_and_loading_is_off_the_event_loop() -> None:
    release = threading.Event()
    warmup_threads: set[int] = set()

    def slow_warmup(_: Toy) -> None:
        warmup_threads.add(threading.get_ident())
        assert release.wait(10)

    # Run startup concurrently and probe while warm-up blocks its worker thread.
    app = build(warmup=slow_warmup)
    manager = LifespanManager(app, startup_timeout=10)
    startup = asyncio.create_task(manager.__aenter__())
    await asyncio.sleep(0.2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://toy") as client:
        probe = await client.get("/readyz")  # the event loop answers while warm-up runs
        assert probe.status_code == 503
        assert "warming up" in probe.json()["detail"]
        release.set()
        await startup
        assert (await client.get("/readyz")).status_code == 200
    await manager.__aexit__(None, None, None)
    assert threading.get_ident() not in warmup_threads


async def test_while_ready_context_wraps_serving_and_its_failure_is_not_ready() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def helpers(app: FastAPI, model: Toy) -> AsyncIterator[None]:
        events.append(f"start {model.name}")
        app.state.helper = "running"
        yield
        events.append("stop")

    app = build(while_ready=helpers)
    async with running(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        assert app.state.helper == "running"
    assert events == ["start toy", "stop"]

    @asynccontextmanager
    async def broken(_: FastAPI, __: Toy) -> AsyncIterator[None]:
        raise OSError("no port for /run/batcher.sock")
        yield

    async with running(build(while_ready=broken)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "starting failed: OSError" in ready.json()["detail"]
        assert "/run" not in ready.text


def test_redact_paths_keeps_only_the_last_component() -> None:
    assert redact_paths("no model at /a/b/c/minilm: config.json is missing") == (
        "no model at minilm: config.json is missing"
    )
    assert redact_paths(r"cannot open C:\models\face.pt") == "cannot open face.pt"
    assert redact_paths("ratio 3/4 and text") == "ratio 3/4 and text"
    assert redact_paths("missing services/speech/artifacts/model.keras") == "missing model.keras"
    assert redact_paths("see ~/.cache/emotion/weights/model.bin") == "see model.bin"


async def test_internal_token_guards_everything_but_the_probes() -> None:
    async with running(build(token=TOKEN)) as anonymous:
        for path in ("/model", "/docs", "/openapi.json", "/metrics"):
            refused = await anonymous.get(path)
            assert refused.status_code == 401, path
            assert set(refused.json()) == {"detail", "code", "request_id"}
            assert refused.json()["code"] == "unauthorized"
            assert refused.headers["x-request-id"] == refused.json()["request_id"]
            assert "content-security-policy" in refused.headers
        assert (await anonymous.get("/model", headers={INTERNAL_TOKEN_HEADER: "t" * 39})).status_code == 401
        assert (await anonymous.get("/livez")).status_code == 200
        assert (await anonymous.get("/readyz")).status_code == 200
        allowed = await anonymous.get("/model", headers={INTERNAL_TOKEN_HEADER: TOKEN})
        assert allowed.status_code == 200
        assert (await anonymous.get("/openapi.json", headers={INTERNAL_TOKEN_HEADER: TOKEN})).status_code == 200


async def test_the_shared_client_sends_the_internal_token() -> None:
    app = build(token=TOKEN)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with make_client(timeout=5, transport=transport, internal_token=SecretStr(TOKEN)) as client:
            assert (await client.get("http://toy/model")).status_code == 200
        async with make_client(timeout=5, transport=transport) as client:  # the old call still works
            assert (await client.get("http://toy/model")).status_code == 401


def test_production_requires_a_long_internal_token() -> None:
    with pytest.raises(ValidationError, match="INTERNAL_TOKEN"):
        BaseServiceSettings(environment="production")
    with pytest.raises(ValidationError, match="INTERNAL_TOKEN"):
        BaseServiceSettings(environment="production", internal_token=SecretStr("short"))
    assert BaseServiceSettings(environment="production", internal_token=SecretStr(TOKEN)).internal_token


async def test_unhandled_error_keeps_shape_request_id_and_headers() -> None:
    async with running(build()) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "req-500"})
        assert response.status_code == 500
        assert response.json() == {"detail": "Internal server error", "code": "internal_error", "request_id": "req-500"}
        assert response.headers["x-request-id"] == "req-500"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == DEFAULT_CSP
        assert "secret" not in response.text
        # The server keeps serving on the same client (the error was answered, not re-raised).
        assert (await client.get("/livez")).status_code == 200


async def test_validation_errors_are_capped() -> None:
    async with running(build()) as client:
        body = {"values": ["x"] * 5000}
        response = await client.post("/sum", json=body)
        assert response.status_code == 422
        payload = response.json()
        assert payload["code"] == "invalid_input"
        assert len(payload["errors"]) == MAX_VALIDATION_ERRORS
        assert "5,000 errors" in payload["detail"]
        assert len(response.content) < 8_000
        assert all(set(e) == {"type", "loc", "msg"} for e in payload["errors"])


async def test_csp_is_strict_except_on_the_docs_pages() -> None:
    async with running(build()) as client:
        assert (await client.get("/livez")).headers["content-security-policy"] == DEFAULT_CSP
        assert "default-src 'self'" in DEFAULT_CSP
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert docs.headers["content-security-policy"] == DOCS_CSP


async def test_one_tag_per_service_and_snake_case_ids() -> None:
    spec = build().openapi()
    assert spec["paths"]["/model"]["get"]["tags"] == ["toy"]
    assert [t["name"] for t in spec["tags"]] == ["toy", "health"]
    assert spec["paths"]["/sum"]["post"]["operationId"] == "sum_numbers"


def test_a_real_server_keeps_the_connection_after_a_500() -> None:
    """Over one keep-alive TCP connection: a 500, then a normal request is still answered."""
    import socket
    import time

    import uvicorn

    from tests.conftest import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build(), host="127.0.0.1", port=port, log_level="critical", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started

        def exchange(sock: socket.socket, path: str) -> bytes:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: toy\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            while len(body) < length:
                body += sock.recv(65536)
            return head

        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            first = exchange(sock, "/boom")
            assert first.startswith(b"HTTP/1.1 500")
            assert b"x-request-id" in first.lower() and b"content-security-policy" in first.lower()
            assert b"connection: close" not in first.lower()
            second = exchange(sock, "/livez")
            assert second.startswith(b"HTTP/1.1 200"), second
    finally:
        server.should_exit = True
        thread.join(10)
