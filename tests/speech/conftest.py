"""Synthesised audio and app fixtures for the speech tests (no datasets, no downloads)."""

import io
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
import soundfile as sf
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from services.speech.app import create_app
from services.speech.settings import ARTIFACTS_DIR, Settings


def voice(duration: float, sr: int = 16000, *, f0: float = 160.0, seed: int = 0, level: float = 0.2) -> np.ndarray:
    """A voice-like signal: harmonics of a vibrato f0, syllable-rate amplitude modulation, breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * sr)) / sr
    pitch = f0 * (1 + 0.03 * np.sin(2 * np.pi * 5.0 * t) + 0.08 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.5 * t) ** 2
    y = y * envelope + 0.05 * rng.standard_normal(t.shape[0])
    return (level * y / np.abs(y).max()).astype(np.float32)


def encode(y: np.ndarray, sr: int, fmt: str, subtype: str | None = None) -> bytes:
    """Bytes of ``y`` written by libsndfile in ``fmt`` (WAV, FLAC, OGG, MP3)."""
    buffer = io.BytesIO()
    sf.write(buffer, y, sr, format=fmt, subtype=subtype)
    return buffer.getvalue()


def wav_bytes(y: np.ndarray, sr: int = 16000) -> bytes:
    return encode(y, sr, "WAV", "PCM_16")


def stereo(y: np.ndarray) -> np.ndarray:
    return np.stack([y, 0.8 * y], axis=1)


@pytest.fixture(scope="session")
def speech_wav() -> bytes:
    """A 3 s voice-like clip, 16 kHz mono WAV."""
    return wav_bytes(voice(3.0))


async def _client(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=120),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://speech") as client,
    ):
        yield app, client


@pytest.fixture(scope="module")
async def speech_app() -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The service with the shipped model, clips up to 20 s, batches up to 3 files."""
    settings = Settings(model_dir=ARTIFACTS_DIR, max_duration_s=20.0, max_batch_size=3, log_json=False)
    async for pair in _client(settings):
        yield pair


@pytest.fixture
async def client(speech_app: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return speech_app[1]


@pytest.fixture(scope="module")
async def short_limit_client() -> AsyncIterator[httpx.AsyncClient]:
    """The service with a 2-second maximum duration."""
    async for _, client in _client(Settings(model_dir=ARTIFACTS_DIR, max_duration_s=2.0, log_json=False)):
        yield client


@pytest.fixture
async def no_model_client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """The service pointed at an empty model folder."""
    empty = tmp_path_factory.mktemp("no_model")
    async for _, client in _client(Settings(model_dir=empty, log_json=False)):
        yield client
