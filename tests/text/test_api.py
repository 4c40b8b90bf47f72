"""The text service's endpoints, against the shipped default model."""

import json

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from services.text.app import create_app
from services.text.errors import EMPTY_TEXT
from shared.labels import LABELS
from tests.text.conftest import make_settings


def assert_prediction(body: dict[str, object]) -> None:
    probabilities = body["probabilities"]
    assert isinstance(probabilities, dict)
    assert list(probabilities) == list(LABELS)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert body["label"] == max(probabilities, key=probabilities.__getitem__)
    assert body["model"] == {"name": "minilm-l6-emotion", "version": body["model"]["version"]}  # type: ignore[index]
    assert isinstance(body["truncated"], bool)


async def test_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    assert (await client.get("/livez")).status_code == 200


async def test_predict_happy(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict", json={"text": "I am so happy today!"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_prediction(body)
    assert body["label"] == "happy"
    assert body["truncated"] is False


@pytest.mark.parametrize("text", ["", "   ", "\n\t  ", "\x00\x00", "\u200b\u200b"])
async def test_empty_or_whitespace_is_422(client: httpx.AsyncClient, text: str) -> None:
    response = await client.post("/predict", json={"text": text})
    assert response.status_code == 422
    assert response.json()["detail"] == EMPTY_TEXT
    assert response.json()["code"] == "empty_text"


async def test_too_long_is_422_with_clear_message(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict", json={"text": "a" * 201})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "text_too_long"
    assert body["detail"] == "Text is 201 characters long; the limit is 200"


async def test_at_the_limit_is_accepted_and_flagged_truncated(client: httpx.AsyncClient) -> None:
    text = "a." * 100  # exactly the 200-character limit, but 200 word pieces: more than the 128-token window
    response = await client.post("/predict", json={"text": text})
    assert response.status_code == 200, response.text
    assert response.json()["truncated"] is True


@pytest.mark.parametrize("text", ["I love this 😍🎉", "أنا سعيد جدا اليوم", "nul\x00inside", "עברית\u202e"])
async def test_any_unicode(client: httpx.AsyncClient, text: str) -> None:
    # json.dumps escapes to ASCII (\\uXXXX): what arrives is what a JSON client sends.
    body = json.dumps({"text": text}).encode()
    response = await client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert_prediction(response.json())


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
async def test_lone_surrogate_is_422_like_at_the_gateway(client: httpx.AsyncClient, path: str) -> None:
    # Valid JSON (an escaped \ud800), but not Unicode: the gateway refuses it too.
    payload = {"text": "lone \ud800 surrogate"} if path == "/predict" else {"texts": ["fine", "lone \ud800"]}
    body = json.dumps(payload).encode()
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_text"
    assert "surrogate" in response.json()["detail"]


async def test_wrong_body_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.post("/predict", json={"text": 3})).status_code == 422
    assert (await client.post("/predict", json={})).status_code == 422
    assert (
        await client.post("/predict", content=b"not json", headers={"content-type": "application/json"})
    ).status_code == 422


async def test_batch(client: httpx.AsyncClient) -> None:
    texts = ["I am so happy today!", "My dog died and I cannot stop crying.", "I am furious with you!"]
    response = await client.post("/predict/batch", json={"texts": texts})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3
    for item in results:
        assert_prediction(item)
    assert [r["label"] for r in results] == ["happy", "sad", "angry"]
    single = (await client.post("/predict", json={"text": texts[1]})).json()
    assert single["probabilities"] == pytest.approx(results[1]["probabilities"], abs=1e-4)


async def test_batch_too_big_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict/batch", json={"texts": ["hi"] * 5})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "Batch has 5 texts; the limit is 4",
        "code": "batch_too_large",
        "request_id": response.headers["x-request-id"],
    }


async def test_batch_with_an_empty_text_names_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict/batch", json={"texts": ["fine", " "]})
    assert response.status_code == 422
    assert response.json()["detail"] == f"texts[1]: {EMPTY_TEXT}"
    assert (await client.post("/predict/batch", json={"texts": []})).status_code == 422


async def test_openapi_has_examples(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["paths"]["/predict"]["post"]["operationId"] == "predict_text"
    assert spec["paths"]["/predict/batch"]["post"]["operationId"] == "predict_text_batch"
    assert "503" in spec["paths"]["/predict"]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    assert schemas["TextRequest"]["examples"] == [{"text": "I am so happy today!"}]
    assert schemas["TextPrediction"]["examples"][0]["label"] == "happy"


async def test_model_missing_is_503(tmp_path) -> None:
    app: FastAPI = create_app(make_settings(model_dir=tmp_path))
    async with (
        LifespanManager(app, startup_timeout=120),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://text") as c,
    ):
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert "config.json is missing" in ready.json()["detail"]
        assert str(tmp_path) not in ready.text, "/readyz must not show server file paths"
        response = await c.post("/predict", json={"text": "I am so happy today!"})
        assert response.status_code == 503
        assert response.json()["code"] == "model_not_ready"
        assert str(tmp_path) not in response.text
        assert "config.json is missing" in response.json()["detail"]
        assert (await c.post("/predict/batch", json={"texts": ["hi"]})).status_code == 503


async def test_bilstm_selected_by_settings() -> None:
    app: FastAPI = create_app(make_settings(model_kind="bilstm"))
    async with (
        LifespanManager(app, startup_timeout=120),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://text") as c,
    ):
        response = await c.post("/predict/batch", json={"texts": ["I am so happy today!", "a " * 60]})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert {r["model"]["name"] for r in results} == {"bilstm-emotion"}
        assert results[0]["label"] == "happy"
        assert [r["truncated"] for r in results] == [False, True]


async def test_a_huge_batch_is_refused_before_its_items_are_validated(client: httpx.AsyncClient) -> None:
    body = json.dumps({"texts": list(range(200_000))}).encode()
    response = await client.post("/predict/batch", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    payload = response.json()
    assert len(payload["errors"]) == 1  # one "too long" error, not 200,000 "not a string" errors
    assert payload["errors"][0]["type"] == "too_long"
