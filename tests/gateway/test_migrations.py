"""Migrations upgrade/downgrade/upgrade on both backends; the app refuses an un-migrated database."""

import asyncio
import os

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from asgi_lifespan import LifespanManager
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from services.gateway.app import create_app
from services.gateway.db import alembic_config, create_engine, current_revisions, downgrade, migration_heads, upgrade
from services.gateway.errors import DatabaseNotMigrated
from services.gateway.models import Base
from tests.gateway.conftest import ALEMBIC_INI, MYSQL_TEST_URL, fresh_database, make_settings

MIGRATIONS_DB_URL = os.environ.get(
    "MYSQL_MIGRATIONS_TEST_URL", str(make_url(MYSQL_TEST_URL).set(database="emotion_test_migrations"))
)
APP_TABLES = {"users", "revoked_tokens", "predictions", "api_keys"}
FIRST_REVISION = "3f1a9c2d7e01"


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
async def empty_db(request, tmp_path_factory) -> str:
    """An empty database (not the shared test schema) on each backend."""
    return await fresh_database(request.param, tmp_path_factory, mysql_url=MIGRATIONS_DB_URL)


async def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_db):
    config = alembic_config(ALEMBIC_INI, empty_db)
    engine = create_engine(empty_db)
    try:
        await upgrade(engine, config)
        assert APP_TABLES <= await tables(empty_db)
        assert await current_revisions(engine) == migration_heads(config)

        await downgrade(engine, config, FIRST_REVISION)
        assert "api_keys" not in await tables(empty_db)
        assert {"users", "predictions"} <= await tables(empty_db)

        await downgrade(engine, config, "base")
        assert not (APP_TABLES & await tables(empty_db))
        assert await current_revisions(engine) == set()

        await upgrade(engine, config)
        assert APP_TABLES <= await tables(empty_db)

        # The migrations produce exactly what the models describe (no drift on this backend).
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()


async def start(url: str, **overrides) -> None:
    app = create_app(make_settings(url, **overrides))
    async with LifespanManager(app):
        pass


async def test_app_refuses_an_unmigrated_database(empty_db):
    with pytest.raises(DatabaseNotMigrated, match=r"make migrate"):
        await start(empty_db)


async def test_app_refuses_a_database_behind_the_code(empty_db):
    config = alembic_config(ALEMBIC_INI, empty_db)
    engine = create_engine(empty_db)
    try:
        await upgrade(engine, config, FIRST_REVISION)
    finally:
        await engine.dispose()
    with pytest.raises(DatabaseNotMigrated, match=FIRST_REVISION):
        await start(empty_db)


async def test_auto_migrate_brings_the_database_to_head(empty_db):
    await start(empty_db, auto_migrate=True)
    assert APP_TABLES <= await tables(empty_db)


async def test_unreachable_database_fails_startup():
    with pytest.raises(OperationalError):
        await start("mysql+asyncmy://nobody@127.0.0.1:1/none", db_connect_timeout_s=0)


async def test_readyz_follows_the_database(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/ready.db"
    config = alembic_config(ALEMBIC_INI, url)
    engine = create_engine(url)
    await upgrade(engine, config)
    app = create_app(make_settings(url, db_check_interval_s=0.05))
    try:
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway.test") as client,
        ):
            assert (await client.get("/readyz")).status_code == 200
            await downgrade(engine, config, FIRST_REVISION)
            await asyncio.sleep(0.3)
            response = await client.get("/readyz")
            assert response.status_code == 503
            assert "not migrated" in response.json()["detail"]
            await upgrade(engine, config)
            await asyncio.sleep(0.3)
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await engine.dispose()


async def test_id_and_token_migration_keeps_every_row(empty_db):
    """8b4e6d0f2a13 -> c5d2e8a41f70 rebuilds users/api_keys/predictions on SQLite: nothing is lost."""
    config = alembic_config(ALEMBIC_INI, empty_db)
    engine = create_engine(empty_db)  # the app's engine: SQLite foreign keys ON (cascades armed)
    try:
        await upgrade(engine, config, "8b4e6d0f2a13")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (id, username, email, password_hash, is_active, created_at) "
                    "VALUES (1, 'a', 'a@example.com', 'h', 1, '2026-11-25 12:00:00'), "
                    "(2, 'b', 'b@example.com', 'h', 1, '2026-11-25 12:00:00')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO predictions (user_id, kind, has_speech, has_text, has_image, modality_results, "
                    "model_versions, latencies_ms, created_at) VALUES "
                    "(1, 'text', 0, 1, 0, '{}', '{}', '{}', '2026-11-25 12:00:00'), "
                    "(2, 'text', 0, 1, 0, '{}', '{}', '{}', '2026-11-25 12:00:00')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) "
                    "VALUES (1, 'k', 'emo_abcdefgh', 'hash', '2026-11-25 12:00:00')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO revoked_tokens (jti, user_id, expires_at, revoked_at) "
                    "VALUES ('j', 1, '2030-01-01', '2026-11-25')"
                )
            )
        await upgrade(engine, config, "c5d2e8a41f70")
        async with engine.begin() as connection:
            counts = [
                (await connection.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar_one()
                for table in ("users", "predictions", "api_keys", "revoked_tokens")
            ]
            assert counts == [2, 2, 1, 1]
            assert (await connection.execute(text("SELECT scopes FROM api_keys"))).scalar_one() == (
                "predict history:read history:write"
            ), "keys made before scopes keep what they could do"
            assert {v for (v,) in await connection.execute(text("SELECT token_version FROM users"))} == {0}
            # Ids are never handed out twice, on either backend.
            top = (await connection.execute(text("SELECT MAX(id) FROM predictions"))).scalar_one()
            await connection.execute(text("DELETE FROM predictions WHERE id = :id"), {"id": top})
            await connection.execute(
                text(
                    "INSERT INTO predictions (user_id, kind, has_speech, has_text, has_image, modality_results, "
                    "model_versions, latencies_ms, created_at) VALUES (1, 'text', 0, 1, 0, '{}', '{}', '{}', "
                    "'2026-11-25 12:00:00')"
                )
            )
            assert (await connection.execute(text("SELECT MAX(id) FROM predictions"))).scalar_one() > top
        if empty_db.startswith("sqlite"):
            async with engine.connect() as connection:
                assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1, "restored after"
        await downgrade(engine, config, "8b4e6d0f2a13")
        async with engine.begin() as connection:
            assert (await connection.execute(text("SELECT COUNT(*) FROM api_keys"))).scalar_one() == 1
    finally:
        await engine.dispose()
