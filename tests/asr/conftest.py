"""Fixtures for the transcription tests: the verified Whisper weights are loaded once per session."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from services.asr.app import create_app, load_model
from services.asr.model import AsrModel
from services.asr.settings import Settings


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"environment": "test", "log_json": False, "max_duration_s": 30.0}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def whisper() -> AsrModel:
    return load_model(make_settings())


@pytest.fixture(scope="session")
async def asr_app() -> AsyncIterator[FastAPI]:
    app = create_app(make_settings())
    async with LifespanManager(app, startup_timeout=300):
        yield app


@pytest.fixture(scope="session")
async def client(asr_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asr_app), base_url="http://asr") as c:
        yield c


@pytest.fixture
def spoken() -> bytes:
    return (Path(__file__).parent / "data" / "kids_talking.flac").read_bytes()
