"""Gateway fixtures: the database on BOTH backends, an app factory, fake upstream services.

Every DB-backed test runs twice: on SQLite (aiosqlite) and on the real MariaDB/MySQL given by
MYSQL_TEST_URL. Migrations are applied once per session per backend; each test starts from
empty tables. If MariaDB is unreachable the MySQL runs fail, unless ALLOW_NO_MYSQL=1.
"""

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.gateway.app import create_app
from services.gateway.db import alembic_config, create_engine, upgrade
from services.gateway.settings import PROJECT_ROOT, Settings
from tests.gateway.factories import fake_fuse, fake_text_batch, prediction_body, transcription_body

MYSQL_TEST_URL = os.environ.get("MYSQL_TEST_URL", "mysql+asyncmy://root@127.0.0.1:3306/emotion_test")
TABLES = ("api_keys", "revoked_tokens", "predictions", "users")
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"

SPEECH = "http://speech.test"
TEXT = "http://text.test"
IMAGE = "http://image.test"
FUSION = "http://fusion.test"
ASR = "http://asr.test"


async def create_mysql_database(url: str) -> None:
    """CREATE DATABASE IF NOT EXISTS for ``url``'s database; fail (or skip) if the server is down."""
    parsed = make_url(url)
    server = create_async_engine(parsed.set(database=""))
    try:
        async with server.connect() as connection:
            await connection.execute(text(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}` CHARACTER SET utf8mb4"))
    except Exception as exc:
        message = f"MariaDB/MySQL unreachable at {parsed.render_as_string(hide_password=True)}: {exc}"
        if os.environ.get("ALLOW_NO_MYSQL") == "1":
            pytest.skip(message)
        pytest.fail(message + " (start it, or set ALLOW_NO_MYSQL=1 to skip the MySQL runs)")
    finally:
        await server.dispose()


async def drop_everything(url: str) -> None:
    """Drop every table (including alembic_version), so migrations start from scratch."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:

            def drop(sync_connection: Any) -> None:
                metadata = MetaData()
                metadata.reflect(sync_connection)
                metadata.drop_all(sync_connection)

            await connection.run_sync(drop)
    finally:
        await engine.dispose()


async def fresh_database(backend: str, tmp_path_factory: pytest.TempPathFactory, *, mysql_url: str) -> str:
    """An empty database on ``backend``, as an async URL."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db')}/gateway.db"
    await create_mysql_database(mysql_url)
    await drop_everything(mysql_url)
    return mysql_url


@pytest.fixture(scope="session", params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
async def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database on each backend (once per session)."""
    url = await fresh_database(request.param, tmp_path_factory, mysql_url=MYSQL_TEST_URL)
    engine = create_engine(url)
    try:
        await upgrade(engine, alembic_config(ALEMBIC_INI, url))
    finally:
        await engine.dispose()
    return url


@pytest.fixture(scope="session")
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """One engine per backend for test bookkeeping (the app makes its own)."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def clean_db(database_url: str, db_engine: AsyncEngine) -> str:
    """The backend's database with empty tables."""
    async with db_engine.begin() as connection:
        for table in TABLES:
            await connection.execute(text(f"DELETE FROM {table}"))
    return database_url


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings: fast bcrypt, fake service URLs, generous limits unless overridden."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "environment": "test",
        "log_json": False,
        "log_level": "WARNING",
        "bcrypt_rounds": 4,
        "speech_url": SPEECH,
        "text_url": TEXT,
        "image_url": IMAGE,
        "fusion_url": FUSION,
        "asr_url": ASR,
        "rate_limit_user": "1000/minute",
        "rate_limit_ip": "1000/minute",
        "rate_limit_auth": "1000/minute",
        "rate_limit_key_prefix": f"test-{uuid.uuid4().hex}",
        "db_check_interval_s": 3600,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


AppFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_client(clean_db: str) -> AppFactory:
    """``async with app_client(**settings) as client``: a started gateway on a clean database."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(clean_db, **overrides))
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway.test") as client,
        ):
            client.app = app  # type: ignore[attr-defined]
            yield client

    return factory


@pytest.fixture
async def client(app_client: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway with default test settings."""
    async with app_client() as c:
        yield c


@pytest.fixture
def upstream() -> respx.MockRouter:
    """The four downstream services, all healthy; tests override single routes."""
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{TEXT}/predict", name="text").respond(json=prediction_body("happy", model="text-model"))
        router.post(f"{SPEECH}/predict", name="speech").respond(
            json=prediction_body("sad", model="speech-model", duration_s=2.5, segments=[])
        )
        router.post(f"{IMAGE}/predict", name="image").respond(
            json=prediction_body("happy", model="image-model", width=64, height=48, faces=[], message=None)
        )
        router.post(f"{FUSION}/fuse", name="fusion").mock(side_effect=fake_fuse)
        router.post(f"{ASR}/transcribe", name="asr").respond(json=transcription_body())
        router.post(f"{TEXT}/predict/batch", name="text_batch").mock(side_effect=fake_text_batch)
        for name, base in (("speech", SPEECH), ("text", TEXT), ("image", IMAGE), ("fusion", FUSION), ("asr", ASR)):
            router.get(f"{base}/readyz", name=f"{name}_ready").respond(json={"status": "ready"})
        yield router
