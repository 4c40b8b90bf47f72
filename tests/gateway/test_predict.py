"""Prediction endpoints: fan-out, partial failures, fusion, pass-through of 4xx, upload checks."""

import asyncio
import json

import httpx
import pytest

from services.gateway.errors import NO_INPUT
from shared.labels import LABELS
from tests.gateway.conftest import FUSION, IMAGE, SPEECH, TEXT
from tests.gateway.factories import auth_headers, png_bytes, prediction_body, probabilities, wav_bytes


def error_body(detail: str, code: str) -> dict[str, str]:
    return {"detail": detail, "code": code}


@pytest.fixture
async def headers(client):
    return await auth_headers(client)


async def test_text_prediction_is_returned_and_stored(client, upstream, headers):
    response = await client.post("/api/predict/text", json={"text": "We won!"}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "text"
    assert body["label"] == "happy"
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert list(body["probabilities"]) == list(LABELS)
    assert body["modalities"]["text"]["model"] == {"name": "text-model", "version": "1.0"}
    assert body["fused"] is None
    assert body["input"]["text_length"] == len("We won!")
    assert upstream["fusion"].call_count == 0
    assert json.loads(upstream["text"].calls.last.request.content) == {"text": "We won!"}
    stored = await client.get(f"/api/predictions/{body['id']}", headers=headers)
    assert stored.status_code == 200
    assert stored.json()["label"] == "happy"
    assert stored.json()["modalities"]["text"]["probabilities"] == body["modalities"]["text"]["probabilities"]


async def test_request_id_is_forwarded_to_services(client, upstream, headers):
    await client.post("/api/predict/text", json={"text": "hi"}, headers={**headers, "X-Request-ID": "trace-123"})
    assert upstream["text"].calls.last.request.headers["x-request-id"] == "trace-123"


async def test_every_service_call_carries_the_internal_token(app_client, upstream):
    token = "internal-" + "k" * 32
    async with app_client(internal_token=token) as client:
        headers = await auth_headers(client)
        files = {"audio": ("a.wav", wav_bytes(), "audio/wav"), "image": ("f.png", png_bytes(), "image/png")}
        response = await client.post("/api/predict/multimodal", data={"text": "hi"}, files=files, headers=headers)
        assert response.status_code == 200, response.text
    for name in ("text", "speech", "image", "fusion"):
        assert upstream[name].calls.last.request.headers["x-internal-token"] == token, name


@pytest.mark.parametrize("payload", [{"text": "   "}, {"text": ""}, {}, {"text": "x", "extra": 1}])
async def test_invalid_text_is_422(client, upstream, headers, payload):
    response = await client.post("/api/predict/text", json=payload, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"
    assert upstream["text"].call_count == 0


async def test_too_long_text_is_422(app_client, upstream):
    async with app_client(max_text_chars=10) as client:
        headers = await auth_headers(client)
        response = await client.post("/api/predict/text", json={"text": "x" * 11}, headers=headers)
    assert response.status_code == 422
    assert "10 characters" in response.json()["detail"]


async def test_speech_prediction_forwards_the_file_and_keeps_metadata(client, upstream, headers):
    audio = wav_bytes()
    response = await client.post(
        "/api/predict/speech", files={"audio": ("clip.wav", audio, "application/octet-stream")}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == "sad"
    assert body["input"]["audio_duration_s"] == 2.5
    assert body["input"]["audio_bytes"] == len(audio)
    assert body["modalities"]["speech"]["details"]["segments"] == []
    forwarded = upstream["speech"].calls.last.request
    assert b'name="audio"' in forwarded.content and audio in forwarded.content
    assert b"Content-Type: audio/wav" in forwarded.content


async def test_image_prediction_forwards_detect(client, upstream, headers):
    response = await client.post(
        "/api/predict/image?detect=never", files={"image": ("face.png", png_bytes(), "image/png")}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["input"]["image_width"] == 64
    assert upstream["image"].calls.last.request.url.params["detect"] == "never"


async def test_image_without_face_has_no_label_and_the_message(client, upstream, headers):
    upstream.routes["image"].respond(json=prediction_body(None, faces=[], message="No face detected"))
    response = await client.post(
        "/api/predict/image", files={"image": ("x.png", png_bytes(), "image/png")}, headers=headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["label"] is None and body["probabilities"] is None
    assert body["modalities"]["image"]["status"] == "ok"
    assert body["modalities"]["image"]["message"] == "No face detected"


async def test_multimodal_calls_every_service_concurrently_and_fuses(client, upstream, headers):
    started: list[str] = []
    release = asyncio.Event()

    def slow(name: str, body: dict) -> object:
        async def handler(request: httpx.Request) -> httpx.Response:
            started.append(name)
            if len(started) == 3:
                release.set()
            # Each call waits until all three have started: only true concurrency gets past this.
            await asyncio.wait_for(release.wait(), timeout=2)
            return httpx.Response(200, json=body)

        return handler

    upstream.routes["text"].mock(side_effect=slow("text", prediction_body("happy")))
    upstream.routes["speech"].mock(side_effect=slow("speech", prediction_body("happy", duration_s=1.0)))
    upstream.routes["image"].mock(side_effect=slow("image", prediction_body("surprise", width=8, height=8)))
    response = await client.post(
        "/api/predict/multimodal",
        data={"text": "What a day"},
        files={"audio": ("a.wav", wav_bytes(), "audio/wav"), "image": ("i.png", png_bytes(), "image/png")},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(started) == ["image", "speech", "text"]
    assert body["fused"]["modalities"] == ["speech", "text", "image"] or set(body["fused"]["modalities"]) == {
        "speech",
        "text",
        "image",
    }
    assert body["label"] == body["fused"]["label"] == "happy"
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    fuse_request = json.loads(upstream["fusion"].calls.last.request.content)
    assert set(fuse_request) == {"speech", "text", "image"}
    assert fuse_request["image"] == pytest.approx(probabilities("surprise"))
    assert set(body["latencies_ms"]) == {"speech", "text", "image", "fusion", "total"}


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (httpx.ConnectError("refused"), 503, "upstream_unavailable"),
        (httpx.ReadTimeout("slow"), 504, "upstream_timeout"),
        (httpx.Response(500, json=error_body("boom", "internal_error")), 502, "upstream_error"),
        (httpx.Response(503, json=error_body("Model is not loaded", "model_not_ready")), 503, "model_not_ready"),
        (httpx.Response(200, json={"label": "happy", "probabilities": {"happy": 2.0}}), 502, "upstream_error"),
    ],
    ids=["down", "timeout", "5xx", "not-ready", "bad-body"],
)
async def test_one_modality_failing_keeps_the_others(*, client, upstream, headers, failure, status, code):
    if isinstance(failure, Exception):
        upstream.routes["speech"].mock(side_effect=failure)
    else:
        upstream.routes["speech"].mock(return_value=failure)
    response = await client.post(
        "/api/predict/multimodal",
        data={"text": "hello"},
        files={"audio": ("a.wav", wav_bytes(), "audio/wav"), "image": ("i.png", png_bytes(), "image/png")},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    speech = body["modalities"]["speech"]
    assert speech["status"] == "error"
    assert speech["error"]["status"] == status
    assert speech["error"]["code"] == code
    assert "speech" in speech["error"]["detail"]
    assert body["modalities"]["text"]["status"] == "ok"
    assert set(json.loads(upstream["fusion"].calls.last.request.content)) == {"text", "image"}
    assert set(body["fused"]["modalities"]) == {"text", "image"}
    assert body["label"] == "happy"


async def test_a_slow_service_is_cut_off_at_its_timeout(app_client, upstream):
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=prediction_body("sad"))

    upstream.routes["speech"].mock(side_effect=hang)
    async with app_client(speech_timeout_s=0.2) as client:
        headers = await auth_headers(client)
        loop = asyncio.get_running_loop()
        start = loop.time()
        response = await client.post(
            "/api/predict/multimodal",
            data={"text": "hello"},
            files={"audio": ("a.wav", wav_bytes(), "audio/wav")},
            headers=headers,
        )
        elapsed = loop.time() - start
    assert response.status_code == 200
    assert elapsed < 2
    assert response.json()["modalities"]["speech"]["error"]["code"] == "upstream_timeout"
    assert response.json()["fused"]["modalities"] == ["text"]


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (httpx.ConnectError("refused"), 503, "upstream_not_ready"),
        (httpx.Response(503, json=error_body("Model is not loaded", "model_not_ready")), 503, "upstream_not_ready"),
        (httpx.Response(500, json=error_body("boom", "internal_error")), 502, "upstream_error"),
        (httpx.ReadTimeout("slow"), 502, "upstream_error"),
    ],
    ids=["down", "not-ready", "5xx", "timeout"],
)
async def test_everything_failing_is_an_error(*, client, upstream, headers, failure, status, code):
    for name in ("text", "image"):
        if isinstance(failure, Exception):
            upstream.routes[name].mock(side_effect=failure)
        else:
            upstream.routes[name].mock(return_value=failure)
    response = await client.post(
        "/api/predict/multimodal",
        data={"text": "hello"},
        files={"image": ("i.png", png_bytes(), "image/png")},
        headers=headers,
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert {e["modality"] for e in body["errors"]} == {"text", "image"}
    assert upstream["fusion"].call_count == 0
    assert (await client.get("/api/predictions", headers=headers)).json()["total"] == 0


async def test_single_modality_service_down_is_503(client, upstream, headers):
    upstream.routes["text"].mock(side_effect=httpx.ConnectError("refused"))
    response = await client.post("/api/predict/text", json={"text": "hi"}, headers=headers)
    assert response.status_code == 503
    assert "text service is unreachable" in response.json()["detail"]


@pytest.mark.parametrize(
    ("status", "code"), [(422, "no_speech"), (413, "payload_too_large"), (415, "unsupported_media_type")]
)
async def test_a_services_4xx_for_the_input_is_passed_through(client, upstream, headers, status, code):
    upstream.routes["speech"].respond(status, json=error_body("No speech found in the audio", code))
    response = await client.post(
        "/api/predict/speech", files={"audio": ("a.wav", wav_bytes(), "audio/wav")}, headers=headers
    )
    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["detail"] == "No speech found in the audio"


async def test_a_4xx_in_multimodal_is_a_per_modality_error(client, upstream, headers):
    upstream.routes["speech"].respond(422, json=error_body("No speech found in the audio", "no_speech"))
    response = await client.post(
        "/api/predict/multimodal",
        data={"text": "hello"},
        files={"audio": ("a.wav", wav_bytes(), "audio/wav")},
        headers=headers,
    )
    assert response.status_code == 200
    error = response.json()["modalities"]["speech"]["error"]
    assert error == {"status": 422, "code": "no_speech", "detail": "No speech found in the audio"}
    assert response.json()["fused"]["modalities"] == ["text"]


async def test_fusion_failure_returns_modalities_and_a_fusion_error(client, upstream, headers):
    upstream.routes["fusion"].mock(side_effect=httpx.ConnectError("refused"))
    response = await client.post(
        "/api/predict/multimodal",
        data={"text": "hello"},
        files={"image": ("i.png", png_bytes(), "image/png")},
        headers=headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["fused"] is None and body["label"] is None
    assert body["fusion_error"]["code"] == "upstream_unavailable"
    assert body["modalities"]["text"]["label"] == "happy"
    stored = (await client.get(f"/api/predictions/{body['id']}", headers=headers)).json()
    assert stored["fusion_error"]["code"] == "upstream_unavailable"


async def test_no_face_in_multimodal_is_left_out_of_fusion(client, upstream, headers):
    upstream.routes["image"].respond(json=prediction_body(None, faces=[], message="No face detected"))
    response = await client.post(
        "/api/predict/multimodal",
        data={"text": "hello"},
        files={"image": ("i.png", png_bytes(), "image/png")},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json()["modalities"]["image"]["message"] == "No face detected"
    assert set(json.loads(upstream["fusion"].calls.last.request.content)) == {"text"}


async def test_multimodal_without_input_is_422(client, upstream, headers):
    response = await client.post("/api/predict/multimodal", data={"text": "  "}, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"] == NO_INPUT


@pytest.mark.parametrize(
    ("endpoint", "field", "content"),
    [
        ("speech", "audio", png_bytes()),
        ("speech", "audio", b"just some text, not audio"),
        ("image", "image", wav_bytes()),
        ("image", "image", b"GIF89a\x01\x00\x01\x00"),
        ("multimodal", "audio", b"%PDF-1.7"),
    ],
)
async def test_wrong_file_type_is_415_whatever_the_client_claims(
    *, client, upstream, headers, endpoint, field, content
):
    claimed = "audio/wav" if field == "audio" else "image/png"
    response = await client.post(
        f"/api/predict/{endpoint}", files={field: (f"x.{field}", content, claimed)}, headers=headers
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert not any(route.call_count for route in upstream.routes)


async def test_empty_file_is_422(client, upstream, headers):
    response = await client.post("/api/predict/speech", files={"audio": ("a.wav", b"", "audio/wav")}, headers=headers)
    assert response.status_code == 422


async def test_file_over_the_per_file_limit_is_413(app_client, upstream):
    async with app_client(max_audio_bytes=4000) as client:
        headers = await auth_headers(client)
        response = await client.post(
            "/api/predict/speech", files={"audio": ("a.wav", wav_bytes(seconds=1.0), "audio/wav")}, headers=headers
        )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert upstream["speech"].call_count == 0


async def test_request_over_the_limit_is_413_while_streaming(app_client, upstream):
    async with app_client(max_upload_bytes=50_000) as client:
        headers = await auth_headers(client)
        sent = 0

        async def body():
            nonlocal sent
            yield (
                b'--abc\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
                b"Content-Type: audio/wav\r\n\r\n" + wav_bytes(seconds=0.1)
            )
            for _ in range(100):  # 100 x 10 kB, no Content-Length: the limit must stop it mid-stream
                sent += 10_000
                yield b"x" * 10_000

        response = await client.post(
            "/api/predict/speech",
            content=body(),
            headers={**headers, "Content-Type": "multipart/form-data; boundary=abc"},
        )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert sent < 1_000_000
    assert upstream["speech"].call_count == 0


async def test_declared_content_length_over_the_limit_is_413(app_client, upstream):
    async with app_client(max_upload_bytes=50_000) as client:
        headers = await auth_headers(client)
        response = await client.post(
            "/api/predict/speech", files={"audio": ("a.wav", wav_bytes(seconds=3.0), "audio/wav")}, headers=headers
        )
    assert response.status_code == 413


async def test_predictions_need_auth(client, upstream):
    response = await client.post("/api/predict/text", json={"text": "hi"})
    assert response.status_code == 401
    assert upstream["text"].call_count == 0


async def test_api_key_can_predict(client, upstream, headers):
    secret = (await client.post("/api/keys", json={"name": "k"}, headers=headers)).json()["key"]
    response = await client.post("/api/predict/text", json={"text": "hi"}, headers={"X-API-Key": secret})
    assert response.status_code == 200


async def test_services_health_reports_each_service(client, upstream):
    reason = "Not ready: loading failed: FileNotFoundError: /srv/models/speech/model.keras"
    upstream.routes["speech_ready"].respond(503, json=error_body(reason, "not_ready"))
    upstream.routes["fusion_ready"].mock(side_effect=httpx.ConnectError("refused"))
    response = await client.get("/api/health/services")
    assert response.status_code == 200
    services = response.json()["services"]
    assert services["text"] == {"status": "ready", "detail": None}
    assert services["image"]["status"] == "ready"
    # Public endpoint: neither the services' URLs nor the server's file paths are shown.
    assert services["speech"] == {
        "status": "not_ready",
        "detail": "Not ready: loading failed: FileNotFoundError: model.keras",
    }
    assert services["fusion"]["status"] == "unreachable"
    assert not any(url in response.text for url in (SPEECH, TEXT, IMAGE, FUSION, "/srv/"))


async def test_oversized_multipart_text_field_is_400_with_the_reason(client, upstream, headers):
    """Starlette caps a non-file multipart field at 1 MB: a clear 400 in our error shape, no service called."""
    response = await client.post("/api/predict/multimodal", data={"text": "a" * (1024 * 1024 + 1)}, headers=headers)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bad_request"
    assert "exceeded maximum size" in body["detail"]
    assert not any(route.call_count for route in upstream.routes)


async def test_malformed_multipart_is_400_with_the_parser_message(client, headers):
    response = await client.post(
        "/api/predict/multimodal",
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\nhello\r\n--x--\r\n",
        headers={**headers, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert response.json()["detail"] != "There was an error parsing the body"
