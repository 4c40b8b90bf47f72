"""The app wiring every service shares: error shape, probes, request ids, body limits, headers, metrics."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel

from shared.errors import InvalidInput
from shared.http import make_client
from shared.observability import REQUEST_ID_HEADER
from shared.service import create_service_app, run_inference
from shared.settings import BaseServiceSettings


class Echo(BaseModel):
    text: str


def build_app(*, ready: bool = True, max_bytes: int = 1024) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ready = ready
        app.state.not_ready_reason = "model file missing"
        yield

    settings = BaseServiceSettings(max_upload_bytes=max_bytes, log_json=True)
    app = create_service_app(
        name="demo", title="Demo", description="test app", version="0", settings=settings, lifespan=lifespan
    )

    @app.post("/echo")
    async def echo(body: Echo) -> dict[str, str]:
        if body.text == "bad":
            raise InvalidInput("text is bad")
        return {"text": body.text}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    router = APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    app.include_router(router, prefix="/api")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/double")
    async def double() -> dict[str, list[int]]:
        result = await run_inference(app.state.metrics, lambda batch: [2 * x for x in batch], [1, 2, 3])
        return {"result": result}

    @app.get("/forward")
    async def forward() -> dict[str, str]:
        seen: dict[str, str] = {}

        def handler(request: httpx.Request) -> httpx.Response:
            seen["id"] = request.headers.get(REQUEST_ID_HEADER, "")
            return httpx.Response(200, json={})

        async with make_client(timeout=1.0, transport=httpx.MockTransport(handler)) as client:
            await client.get("http://upstream/x")
        return seen

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = build_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def test_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/livez")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_is_503_with_reason_until_ready() -> None:
    app = build_app(ready=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["code"] == "not_ready"
    assert "model file missing" in response.json()["detail"]


async def test_domain_error_uses_shared_shape_with_request_id(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", json={"text": "bad"}, headers={REQUEST_ID_HEADER: "req-123"})
    assert response.status_code == 422
    assert response.json() == {"detail": "text is bad", "code": "invalid_input", "request_id": "req-123"}
    assert response.headers[REQUEST_ID_HEADER] == "req-123"


async def test_validation_error_shape_does_not_echo_input(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", json={"nope": "x" * 50})
    body = response.json()
    assert response.status_code == 422
    assert body["code"] == "invalid_input"
    assert body["detail"].startswith("text:")
    assert all("input" not in e for e in body["errors"])


async def test_404_and_500_use_shared_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    boom = await client.get("/boom")
    assert boom.status_code == 500
    assert boom.json()["code"] == "internal_error"
    assert "secret internals" not in boom.text


async def test_request_id_minted_when_absent_or_unsafe(client: httpx.AsyncClient) -> None:
    minted = (await client.get("/livez")).headers[REQUEST_ID_HEADER]
    assert len(minted) == 32
    unsafe = (await client.get("/livez", headers={REQUEST_ID_HEADER: "x" * 500})).headers[REQUEST_ID_HEADER]
    assert unsafe != "x" * 500


async def test_request_id_forwarded_to_upstream_calls(client: httpx.AsyncClient) -> None:
    response = await client.get("/forward", headers={REQUEST_ID_HEADER: "trace-9"})
    assert response.json() == {"id": "trace-9"}


async def test_declared_oversized_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/raw", content=b"x" * 2048)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_streamed_oversized_body_is_refused_while_reading(client: httpx.AsyncClient) -> None:
    chunks_sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(100):
            chunks_sent += 1
            yield b"y" * 512

    response = await client.post("/raw", content=stream())
    assert response.status_code == 413
    assert chunks_sent < 100, "the body should be refused before the client finished sending it"
    small = await client.post("/raw", content=b"z" * 100)
    assert small.json() == {"size": 100}


async def test_security_headers_present(client: httpx.AsyncClient) -> None:
    headers = (await client.get("/livez")).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


async def test_metrics_count_requests_and_batches(client: httpx.AsyncClient) -> None:
    assert (await client.get("/double")).json() == {"result": [2, 4, 6]}
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/double",service="demo",status="200"} 1.0' in text
    assert 'inference_batch_size_sum{service="demo"} 3.0' in text


async def test_metrics_label_routes_by_template_with_router_prefix(client: httpx.AsyncClient) -> None:
    await client.get("/api/items/41")
    await client.get("/api/items/42")
    text = (await client.get("/metrics")).text
    assert 'route="/api/items/{item_id}",service="demo",status="200"} 2.0' in text
    assert 'route="/api/items/41"' not in text
