"""Fixtures for the text tests: the shipped models are loaded once per session."""

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from services.text.app import create_app
from services.text.model import TextModel, load
from services.text.settings import ARTIFACTS_DIR, Settings


@pytest.fixture(scope="session")
def minilm() -> TextModel:
    return load(ARTIFACTS_DIR / "minilm")


@pytest.fixture(scope="session")
def bilstm() -> TextModel:
    return load(ARTIFACTS_DIR / "bilstm")


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"environment": "test", "log_json": False, "max_text_chars": 200, "max_batch_size": 4}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def text_app() -> AsyncIterator[FastAPI]:
    app = create_app(make_settings())
    async with LifespanManager(app, startup_timeout=120):
        yield app


@pytest.fixture(scope="session")
async def client(text_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=text_app), base_url="http://text") as c:
        yield c
