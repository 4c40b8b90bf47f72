"""Every service follows the same conventions (STYLE.md): health routes, error shape, files, OpenAPI.

Services are discovered from ``services/*/app.py``, so a new service is checked the day it is added.
Apps are built without running their lifespan: no model is loaded, which also shows the not-ready path.
"""

import importlib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
ALL = sorted(p.parent.name for p in SERVICES_DIR.glob("*/app.py"))
INFERENCE = [name for name in ALL if name != "gateway"]
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
ERROR_KEYS = {"detail", "code", "request_id"}
#: The files every inference service has, each with the same job.
SERVICE_FILES = ("app.py", "api.py", "settings.py", "errors.py", "model.py")


def build(name: str) -> FastAPI:
    settings_module = importlib.import_module(f"services.{name}.settings")
    app_module = importlib.import_module(f"services.{name}.app")
    settings = settings_module.Settings(environment="test", log_json=False)
    app: FastAPI = app_module.create_app(settings)
    return app


@pytest.fixture(scope="module", params=ALL)
def service(request: pytest.FixtureRequest) -> tuple[str, FastAPI]:
    return request.param, build(request.param)


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]


def test_services_are_discovered() -> None:
    assert {"gateway", "speech", "text", "image", "fusion"} <= set(ALL)


async def test_same_health_routes_and_error_shape(service: tuple[str, FastAPI]) -> None:
    name, app = service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}") as client:
        assert (await client.get("/livez")).json() == {"status": "ok"}
        ready = await client.get("/readyz")  # no lifespan ran: nothing is loaded
        assert ready.status_code == 503
        assert set(ready.json()) == ERROR_KEYS
        assert ready.json()["code"] == "not_ready"
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "http_requests_total" in metrics.text
        missing = await client.get("/no/such/route", headers={"X-Request-ID": "conv-1"})
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Not Found", "code": "not_found", "request_id": "conv-1"}
        for header in ("x-content-type-options", "content-security-policy", "x-request-id"):
            assert header in missing.headers, (name, header)


async def test_inference_routes_answer_503_in_the_error_shape_until_the_model_is_loaded() -> None:
    for name in INFERENCE:
        app = build(name)
        spec = app.openapi()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}") as client:
            for path, method, _ in operations(spec):
                if method != "post":
                    continue
                response = await client.post(path, json={}, files=None)
                # Either the body is checked first (422) or the model is (503): both in the shared shape.
                assert response.status_code in {422, 503}, (name, path)
                assert ERROR_KEYS <= set(response.json()), (name, path)


def test_operation_ids_are_snake_case_and_unique(service: tuple[str, FastAPI]) -> None:
    name, app = service
    ids = [op.get("operationId", "") for _, _, op in operations(app.openapi())]
    assert all(SNAKE_CASE.match(i) for i in ids), (name, ids)
    assert len(ids) == len(set(ids)), name


@pytest.mark.parametrize("name", INFERENCE)
def test_one_tag_per_inference_service(name: str) -> None:
    spec = build(name).openapi()
    declared = {t["name"]: t for t in spec.get("tags", [])}
    assert declared[name].get("description"), name
    for path, _, op in operations(spec):
        expected = ["health"] if path in {"/livez", "/readyz"} else [name]
        assert op.get("tags") == expected, (name, path, op.get("tags"))


@pytest.mark.parametrize("name", INFERENCE)
def test_same_files_and_a_module_level_router(name: str) -> None:
    folder = SERVICES_DIR / name
    assert [f for f in SERVICE_FILES if not (folder / f).is_file()] == [], name
    api = importlib.import_module(f"services.{name}.api")
    assert isinstance(api.router, APIRouter), name
    assert not api.router.tags, f"{name}: the factory adds the service tag; the router declares none"


def test_every_declared_error_has_its_own_example(service: tuple[str, FastAPI]) -> None:
    name, app = service
    for path, method, op in operations(app.openapi()):
        seen: dict[str, str] = {}
        for status, response in op.get("responses", {}).items():
            if not status.startswith(("4", "5")):
                continue
            content = response.get("content", {}).get("application/json", {})
            example = content.get("example") or next(iter(content.get("examples", {}).values()), {}).get("value")
            assert example, (name, path, method, status)
            assert set(example) >= {"detail", "code"}, (name, path, status)
            if status != "503":
                assert example["code"] != "model_not_ready", (name, path, status)
            assert example["detail"] not in seen.values(), (name, path, status, "same example as", seen)
            seen[status] = example["detail"]


def test_error_schema_is_the_shared_one(service: tuple[str, FastAPI]) -> None:
    name, app = service
    spec = app.openapi()
    schemas = spec.get("components", {}).get("schemas", {})
    assert "HTTPValidationError" not in schemas, name
    for path, _, op in operations(spec):
        for status, response in op.get("responses", {}).items():
            if status.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"].get("$ref", "")
                assert ref.endswith("/ErrorResponse"), (name, path, status)


def test_text_endpoint_shows_a_real_text_example() -> None:
    spec = build("text").openapi()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    schema = spec["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[-1]]
    example = (schema.get("examples") or [body.get("example")])[0]
    assert isinstance(example["text"], str)
    assert len(example["text"].split()) >= 3


def test_services_take_the_same_upload_size_as_the_gateway() -> None:
    gateway = importlib.import_module("services.gateway.settings").Settings(environment="test")
    # What the gateway lets through for each service is what the service accepts from anyone.
    forwarded = {
        "speech": gateway.audio_limit,
        "image": gateway.image_limit,
        "text": gateway.max_upload_bytes,
        "fusion": gateway.max_upload_bytes,
    }
    for name, limit in forwarded.items():
        settings = importlib.import_module(f"services.{name}.settings").Settings(environment="test")
        assert settings.max_upload_bytes == limit, name


async def test_a_body_over_the_limit_is_413_at_every_service() -> None:
    for name in INFERENCE:
        app = build(name)
        limit = app.state.settings.max_upload_bytes
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}") as client:
            path = next(p for p, m, _ in operations(app.openapi()) if m == "post")
            response = await client.post(path, content=b"x" * (limit + 1), headers={"content-type": "text/plain"})
        assert response.status_code == 413, name
        assert response.json()["code"] == "payload_too_large"
