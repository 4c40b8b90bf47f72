"""``POST /transcribe`` over HTTP, readiness after warm-up, and the checksum guard."""

import dataclasses
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from services.asr import app as asr_app_module
from services.asr.app import create_app
from tests.asr.conftest import make_settings
from tests.video.builder import encode_audio, tone


async def test_ready_after_warm_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200


async def test_transcribe_returns_language_segments_and_model(client: httpx.AsyncClient, spoken: bytes) -> None:
    response = await client.post("/transcribe", files={"audio": ("clip.bin", spoken, "application/octet-stream")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["language"] == "en"
    assert body["model"] == {"name": "whisper-base-ct2", "version": "1.0.0-int8"}
    assert "talking by the door" in body["text"].lower()
    (segment,) = body["segments"]
    assert 0.0 <= segment["start"] < segment["end"] <= body["duration_s"] + 1e-3
    assert segment["text"] == body["text"]


async def test_errors_use_the_shared_shape(client: httpx.AsyncClient) -> None:
    png = await client.post("/transcribe", files={"audio": ("a.wav", b"\x89PNG\r\n\x1a\n" + bytes(64), "audio/wav")})
    assert png.status_code == 415 and png.json()["code"] == "unsupported_media_type"
    long_clip = encode_audio(tone(31.0, 8000), fmt="wav", codec="pcm_s16le", rate=8000)
    too_long = await client.post("/transcribe", files={"audio": ("a.wav", long_clip, "audio/wav")})
    assert too_long.status_code == 413 and too_long.json()["code"] == "audio_too_long"
    empty = await client.post("/transcribe", files={"audio": ("a.wav", b"", "audio/wav")})
    assert empty.status_code == 422


async def test_weights_that_fail_their_checksum_keep_the_service_unready(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrong = dataclasses.replace(asr_app_module.WHISPER_BASE, sha256="0" * 64)
    monkeypatch.setattr(asr_app_module, "WHISPER_BASE", wrong)
    app = create_app(make_settings(weights_cache_dir=tmp_path))
    async with LifespanManager(app, startup_timeout=120):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://asr") as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert "failed its checksum" in ready.json()["detail"]
            assert str(tmp_path) not in ready.json()["detail"]  # no server paths on a public probe
            refused = await client.post("/transcribe", files={"audio": ("a.wav", b"RIFF", "audio/wav")})
            assert refused.status_code == 503
            assert refused.json()["detail"].startswith("Transcription model is not loaded")
