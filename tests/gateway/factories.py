"""Test data: upstream response bodies, tiny real WAV/PNG files, users."""

import io
import json
import math
import struct
import wave
import zlib
from typing import Any

import httpx

from shared.labels import LABELS

PASSWORD = "correct horse battery"


def probabilities(top: str, p: float = 0.7) -> dict[str, float]:
    """Seven probabilities summing to 1 with ``top`` the largest."""
    rest = (1.0 - p) / (len(LABELS) - 1)
    return {label: (p if label == top else rest) for label in LABELS}


def prediction_body(top: str | None, *, model: str = "model", **extras: Any) -> dict[str, Any]:
    """An inference service's 200 body (label None = no face)."""
    body: dict[str, Any] = {
        "label": top,
        "probabilities": probabilities(top) if top else None,
        "model": {"name": model, "version": "1.0"},
    }
    body.update(extras)
    return body


def fake_fuse(request: httpx.Request) -> httpx.Response:
    """A fusion service that averages what it is given."""
    given: dict[str, dict[str, float]] = json.loads(request.content)
    fused = {label: sum(p[label] for p in given.values()) / len(given) for label in LABELS}
    top = max(fused, key=fused.__getitem__)
    return httpx.Response(
        200,
        json={
            "label": top,
            "probabilities": fused,
            "modalities": list(given),
            "model": {"name": "fusion-model", "version": "1.0"},
        },
    )


def transcription_body(*segments: tuple[float, float, str], language: str = "en") -> dict[str, Any]:
    """The transcription service's 200 body for these ``(start, end, text)`` segments."""
    chosen = segments or ((0.0, 2.0, "What a wonderful day"),)
    return {
        "language": language,
        "duration_s": max(end for _, end, _ in chosen) if chosen else 0.0,
        "text": " ".join(text for _, _, text in chosen),
        "segments": [{"start": a, "end": b, "text": t} for a, b, t in chosen],
        "model": {"name": "asr-model", "version": "1.0"},
    }


def fake_text_batch(request: httpx.Request) -> httpx.Response:
    """A text service whose label is 'sad' for texts mentioning sad, else 'happy'."""
    texts: list[str] = json.loads(request.content)["texts"]
    results = [prediction_body("sad" if "sad" in t.lower() else "happy", model="text-model") for t in texts]
    return httpx.Response(200, json={"results": results})


def wav_bytes(seconds: float = 0.5, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV with a 220 Hz tone."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = (int(8000 * math.sin(2 * math.pi * 220 * i / rate)) for i in range(int(seconds * rate)))
        out.writeframes(b"".join(struct.pack("<h", f) for f in frames))
    return buffer.getvalue()


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    """A valid grey PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes([128]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


async def register(client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD) -> httpx.Response:
    """POST /api/register."""
    return await client.post(
        "/api/register", json={"username": username, "email": f"{username}@example.com", "password": password}
    )


async def login(client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD) -> httpx.Response:
    """POST /api/login with the OAuth2 form."""
    return await client.post("/api/login", data={"username": username, "password": password})


async def auth_headers(client: httpx.AsyncClient, username: str = "alice") -> dict[str, str]:
    """Register ``username`` and return its bearer header."""
    assert (await register(client, username)).status_code == 201
    response = await login(client, username)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
