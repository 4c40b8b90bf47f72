"""Fixtures for the image service: encoded synthetic images and an app with the shipped model."""

import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image

from services.image.app import create_app
from services.image.settings import ARTIFACT_DIR, Settings
from tests.image.synth import face_image, landscape_image


def encode(bgr: np.ndarray, fmt: str = "JPEG", **params: object) -> bytes:
    """Encode a BGR array with PIL in ``fmt`` (JPEG, PNG, WEBP, BMP)."""
    buffer = io.BytesIO()
    Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def face_bgr() -> np.ndarray:
    return face_image(320, 320)


@pytest.fixture(scope="session")
def face_jpeg(face_bgr: np.ndarray) -> bytes:
    return encode(face_bgr, "JPEG", quality=92)


@pytest.fixture(scope="session")
def two_faces_png() -> bytes:
    return encode(face_image(640, 320, faces=2), "PNG")


@pytest.fixture(scope="session")
def landscape_png() -> bytes:
    return encode(landscape_image(), "PNG")


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"model_dir": ARTIFACT_DIR, "log_json": False, "environment": "test"}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


AppFactory = Callable[..., AsyncIterator[httpx.AsyncClient]]


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=120) as manager:  # a first start exports the ONNX model
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://image") as client:
            yield client


@pytest.fixture(scope="session")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(make_settings(max_pixels=2_000_000, max_batch_size=4)):
        yield c


@pytest.fixture
async def client_without_model(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(make_settings(model_dir=tmp_path)):
        yield c
