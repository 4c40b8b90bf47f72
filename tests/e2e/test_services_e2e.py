"""End to end: the gateway, four inference services, fusion and asr as real processes, real models.

Fails (does not skip) when a service is not ready, e.g. because its model file is missing.
"""

import importlib.util
import io
import math
import struct
import sys
import wave
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.labels import LABELS
from tests.conftest import free_port
from tests.video.builder import build_video

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("run_local", ROOT / "deploy" / "run_local.py")
assert _spec is not None and _spec.loader is not None
run_local = importlib.util.module_from_spec(_spec)
sys.modules["run_local"] = run_local  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(run_local)

pytestmark = pytest.mark.e2e

#: The transcription service warms Whisper up before it is ready: the slowest to start on a busy CPU.
READY_TIMEOUT_S = 240.0
PASSWORD = "e2e password 123"


def tone_wav(seconds: float = 1.5, rate: int = 16000) -> bytes:
    """A voiced-like signal: 150 Hz with harmonics and a syllable-rate envelope."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = []
        for i in range(int(seconds * rate)):
            t = i / rate
            envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 4 * t)
            value = sum(math.sin(2 * math.pi * 150 * k * t) / k for k in range(1, 6))
            samples.append(struct.pack("<h", int(6000 * envelope * value)))
        out.writeframes(b"".join(samples))
    return buffer.getvalue()


def grey_png(size: int = 48) -> bytes:
    """A plain grey PNG (classified as a whole with detect=never)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(range(64, 64 + size)) for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def assert_probabilities(probabilities: dict[str, float]) -> None:
    assert list(probabilities) == list(LABELS)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("e2e")
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/e2e.db",
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_AUTH": "100/minute",
        "OMP_NUM_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    run_local.migrate(env)
    ports = {name: free_port() for name in run_local.SERVICES}
    stack = run_local.start_services(ports=ports, env=env, log_dir=tmp / "logs")
    try:
        problems = run_local.wait_ready(stack, timeout_s=READY_TIMEOUT_S)
        if problems:
            logs = "\n".join(f"--- {name}\n{stack.log_tail(name)}" for name in problems)
            pytest.fail(f"services not ready: {problems}\n{logs}")
        yield stack
    finally:
        run_local.stop_services(stack)


@pytest.fixture(scope="module")
def client(stack: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("gateway"), timeout=60.0) as http:
        assert (
            http.post(
                "/api/register", json={"username": "e2e", "email": "e2e@example.com", "password": PASSWORD}
            ).status_code
            == 201
        )
        token = http.post("/api/login", data={"username": "e2e", "password": PASSWORD}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


def test_every_service_is_ready(client: httpx.Client) -> None:
    services = client.get("/api/health/services").json()["services"]
    assert {name: s["status"] for name, s in services.items()} == dict.fromkeys(
        ("speech", "text", "image", "fusion", "asr"), "ready"
    )


def test_text_through_the_gateway(client: httpx.Client) -> None:
    response = client.post("/api/predict/text", json={"text": "I am so happy today, this is wonderful news!"})
    assert response.status_code == 200, response.text
    body = response.json()
    text = body["modalities"]["text"]
    assert text["status"] == "ok"
    assert text["model"]["name"] and text["model"]["version"]
    assert_probabilities(body["probabilities"])
    assert body["label"] in LABELS
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].__getitem__)
    assert body["label"] == "happy"


def test_multimodal_through_the_gateway_and_fusion(client: httpx.Client) -> None:
    response = client.post(
        "/api/predict/multimodal?detect=never",
        data={"text": "This is terrible, I hate everything about it."},
        files={"audio": ("voice.wav", tone_wav(), "audio/wav"), "image": ("face.png", grey_png(), "image/png")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    modalities = body["modalities"]
    for name in ("text", "image"):
        assert modalities[name]["status"] == "ok", modalities[name]
        assert_probabilities(modalities[name]["probabilities"])
        assert modalities[name]["model"]["name"]
    speech = modalities["speech"]
    if speech["status"] == "ok":
        assert_probabilities(speech["probabilities"])
    else:  # a synthetic signal may be refused as "no speech", but never a service failure
        assert speech["error"]["status"] == 422, speech
    fused = body["fused"]
    assert fused is not None, body["fusion_error"]
    assert_probabilities(fused["probabilities"])
    assert fused["label"] in LABELS
    assert fused["model"]["name"]
    assert {"text", "image"} <= set(fused["modalities"])
    assert body["label"] == fused["label"]


def test_video_through_every_service(client: httpx.Client) -> None:
    """One real video: PyAV decode, speech + asr -> text + image on frames, per-window fusion, history."""
    response = client.post(
        "/api/predict/video", files={"video": ("clip.mp4", build_video("mp4", seconds=4.0), "video/mp4")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    modalities = body["modalities"]
    assert {name: m["status"] for name, m in modalities.items()} == dict.fromkeys(("speech", "text", "image"), "ok")
    assert "talking by the door" in body["transcript"]["text"].lower()
    assert modalities["text"]["label"] in LABELS
    assert modalities["image"]["details"]["frames"] == 8
    timeline = body["timeline"]
    assert [(w["start"], w["end"]) for w in timeline["windows"]] == [(0.0, 2.0), (2.0, pytest.approx(4.0, abs=0.1))]
    fused = body["fused"]
    assert fused is not None, body["fusion_error"]
    assert_probabilities(fused["probabilities"])
    assert {"speech", "text"} <= set(fused["modalities"])
    assert body["label"] == fused["label"]
    for window in timeline["windows"]:
        if window["modalities"]:
            assert window["label"] in LABELS
    assert body["input"]["video_frame_count"] == 40
    stored = client.get(f"/api/predictions/{body['id']}").json()
    assert [w["label"] for w in stored["timeline"]["windows"]] == [w["label"] for w in timeline["windows"]]


def test_history_holds_the_predictions(client: httpx.Client) -> None:
    page = client.get("/api/predictions").json()
    assert page["total"] >= 2
    assert {item["kind"] for item in page["items"]} >= {"text", "multimodal"}
