"""POST /fuse: every modality subset, input validation, and 503 without a model."""

import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from services.fusion.app import create_app
from services.fusion.errors import MODEL_NOT_READY, NO_MODALITIES
from services.fusion.model import SUBSETS
from services.fusion.settings import Settings
from shared.labels import LABELS

HAPPY = {"angry": 0.02, "disgust": 0.01, "fear": 0.02, "happy": 0.88, "sad": 0.02, "surprise": 0.03, "neutral": 0.02}
SAD = {"angry": 0.03, "disgust": 0.01, "fear": 0.04, "happy": 0.02, "sad": 0.84, "surprise": 0.02, "neutral": 0.04}


async def _client(model_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(model_dir=model_dir, log_json=False, environment="test"))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fusion") as client:
            yield client


@pytest.fixture
async def client(model_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(model_dir):
        yield c


@pytest.fixture
async def client_without_model(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(tmp_path / "nothing-here"):
        yield c


async def test_ready_with_model(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200


@pytest.mark.parametrize("subset", SUBSETS, ids=["+".join(s) for s in SUBSETS])
async def test_every_subset_fuses_and_echoes_modalities(client: httpx.AsyncClient, subset: tuple[str, ...]) -> None:
    response = await client.post("/fuse", json=dict.fromkeys(subset, HAPPY))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["modalities"] == list(subset)
    assert list(body["probabilities"]) == list(LABELS)
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-6)
    assert all(p >= 0 for p in body["probabilities"].values())
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["model"]["name"] == "rf-late-fusion"
    # Every modality confidently says happy; even the small test forest must agree.
    assert body["label"] == "happy"


async def test_modalities_in_canonical_order_and_evidence_matters(client: httpx.AsyncClient) -> None:
    response = await client.post("/fuse", json={"image": SAD, "speech": SAD, "text": SAD})
    assert response.status_code == 200
    assert response.json()["modalities"] == ["speech", "text", "image"]
    assert response.json()["label"] == "sad"


async def test_label_keys_may_come_in_any_order(client: httpx.AsyncClient) -> None:
    shuffled = dict(reversed(list(HAPPY.items())))
    response = await client.post("/fuse", json={"text": shuffled})
    assert response.status_code == 200
    assert response.json()["label"] == "happy"


def _with(**changes: float) -> dict[str, float]:
    return {**HAPPY, **changes}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"text": {k: v for k, v in HAPPY.items() if k != "sad"}}, "missing: sad"),
        ({"text": _with(angry=-0.02, happy=0.92)}, "non-negative"),
        ({"text": _with(happy=0.5)}, "sum to 1"),
        ({"text": HAPPY, "video": HAPPY}, "Extra inputs"),
        ({"text": {**HAPPY, "bored": 0.0}}, "bored"),
        ({"text": "happy"}, "dictionary"),
        ({}, NO_MODALITIES),
        ({"text": None, "image": None}, NO_MODALITIES),
    ],
    ids=["missing-label", "negative", "sum", "extra-field", "unknown-label", "not-a-dict", "empty", "all-null"],
)
async def test_invalid_bodies_are_422(client: httpx.AsyncClient, body: dict, fragment: str) -> None:
    response = await client.post("/fuse", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "invalid_input"
    assert fragment in response.text


async def test_nan_is_422(client: httpx.AsyncClient) -> None:
    # JSON has no NaN, but Python's parser accepts the literal; it must still be refused.
    raw = (
        '{"text": {"angry": NaN, "disgust": 0.01, "fear": 0.02, "happy": 0.9, "sad": 0.02, '
        '"surprise": 0.03, "neutral": 0.02}}'
    )
    response = await client.post("/fuse", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"


async def test_missing_body_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/fuse")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"


async def test_model_missing_gives_503(client_without_model: httpx.AsyncClient) -> None:
    ready = await client_without_model.get("/readyz")
    assert ready.status_code == 503
    assert "model file not found" in ready.json()["detail"]
    response = await client_without_model.post("/fuse", json={"text": HAPPY})
    assert response.status_code == 503
    assert response.json()["code"] == "model_not_ready"
    assert response.json()["detail"].startswith(MODEL_NOT_READY)


async def test_corrupt_model_gives_503(tmp_path: Path) -> None:
    (tmp_path / "fusion_forest.joblib").write_bytes(b"not a model")
    async for client in _client(tmp_path):
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.post("/fuse", json={"text": HAPPY})).status_code == 503


async def test_openapi_documents_fuse(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/fuse"]["post"]
    assert operation["operationId"] == "fuse"
    assert {"422", "503"} <= set(operation["responses"])
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert {"all", "text_image", "speech"} <= set(examples)


@pytest.mark.parametrize("modality", ["speech", "text", "image"])
async def test_one_modality_comes_back_as_given(client: httpx.AsyncClient, modality: str) -> None:
    response = await client.post("/fuse", json={modality: SAD})
    assert response.status_code == 200, response.text
    assert response.json()["probabilities"] == pytest.approx(SAD, abs=1e-6)


async def test_correlation_guard_setting_softens_multimodal_output(model_dir: Path) -> None:
    async def top(settings: Settings) -> float:
        app = create_app(settings)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fusion") as c:
                body = (await c.post("/fuse", json={"speech": HAPPY, "text": HAPPY, "image": HAPPY})).json()
        return float(max(body["probabilities"].values()))

    base: dict = {"model_dir": model_dir, "log_json": False, "environment": "test"}
    independent = await top(Settings(**base, correlation_guard=0.0))
    redundant = await top(Settings(**base, correlation_guard=1.0))
    assert redundant < independent
    with pytest.raises(ValueError, match="less than or equal to 1"):
        Settings(**base, correlation_guard=1.5)
