"""Alembic environment: async engine (aiosqlite or asyncmy), or a connection handed in by the app/tests."""

import asyncio
from logging.config import fileConfig

from alembic import context
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import create_async_engine

from services.gateway.db import ensure_sqlite_folder
from services.gateway.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


class _DatabaseSettings(BaseSettings):
    """Only DATABASE_URL, so migrating needs none of the gateway's other settings."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
    database_url: str = "sqlite+aiosqlite:///./var/emotion.db"


def database_url() -> str:
    """The URL given by the caller (tests, the app), else DATABASE_URL."""
    return config.get_main_option("sqlalchemy.url") or _DatabaseSettings().database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations(connection: Connection) -> None:
    """Run the migrations on an open (sync-facade) connection."""
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """Open an async engine on DATABASE_URL and migrate through it."""
    url = database_url()
    ensure_sqlite_folder(url)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
        await connection.commit()
    await engine.dispose()


def run_migrations_online() -> None:
    """Use the connection the app or tests passed in, else open one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
