"""Database engine, sessions and the migration check (made once, in the app's lifespan)."""

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import Request
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import PoolResetState

from services.gateway.errors import DATABASE_NOT_MIGRATED, DatabaseNotMigrated

logger = logging.getLogger(__name__)


def ensure_sqlite_folder(database_url: str) -> None:
    """Create the folder of a file-backed SQLite database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(dbapi_connection: Any, _: Any) -> None:
    """Foreign keys on; write-ahead log with ``synchronous=NORMAL`` (one fsync per checkpoint, not per commit).

    In the default rollback-journal mode every commit (one per prediction) waits for several
    fsyncs: most of a text prediction's time in the gateway. In WAL mode a commit is an append;
    the database stays consistent after a crash, and only the last commits before a power loss
    can be lost (https://www.sqlite.org/wal.html, https://www.sqlite.org/pragma.html#pragma_synchronous).
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # a no-op answer ("memory") for in-memory databases
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _reset_sqlite(dbapi_connection: Any, _: Any, state: PoolResetState) -> None:
    """A connection back in the pool: roll back its transaction, if it has one.

    SQLite knows whether one is open (``in_transaction``, read without a trip to aiosqlite's
    thread); after a commit there is none, and an unconditional rollback would cost a thread
    round trip per request. The event replaces ``pool_reset_on_return``, as SQLAlchemy documents
    (https://docs.sqlalchemy.org/en/20/core/pooling.html#using-the-reset-event); a connection
    dropped without an event loop (``asyncio_safe`` false) is discarded by the pool, not reused.
    """
    if state.asyncio_safe and dbapi_connection.driver_connection.in_transaction:
        dbapi_connection.rollback()


def create_engine(
    database_url: str, *, pool_size: int = 10, max_overflow: int | None = None, pool_timeout_s: float = 10.0
) -> AsyncEngine:
    """An async engine for SQLite (aiosqlite) or MySQL/MariaDB (asyncmy), pooled as configured."""
    ensure_sqlite_folder(database_url)
    backend = make_url(database_url).get_backend_name()
    options: dict[str, Any] = {}
    if backend != "sqlite":
        # A server can drop a pooled connection (restart, wait_timeout); SQLite is a local file
        # and a ping there is only a wasted round trip through aiosqlite's thread per request.
        options |= {
            "pool_pre_ping": True,
            "pool_size": pool_size,
            "max_overflow": pool_size if max_overflow is None else max_overflow,
            "pool_timeout": pool_timeout_s,
            "pool_recycle": 1800,
        }
    else:
        # The pool's own reset rolls back every connection it takes back, even right after a
        # commit; _reset_sqlite does it only when a transaction is open (see there).
        options["pool_reset_on_return"] = None
    engine = create_async_engine(database_url, **options)
    if backend == "sqlite":
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "reset", _reset_sqlite)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay usable after commit (no lazy reloads in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed by the route, rolled back on error."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        yield session


def alembic_config(path: Path, database_url: str) -> Config:
    """The project's alembic config, pointed at ``database_url``."""
    config = Config(str(path))
    config.set_main_option("script_location", str(path.parent / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def migration_heads(config: Config) -> set[str]:
    """Revisions the code expects the database to be at."""
    return set(ScriptDirectory.from_config(config).get_heads())


async def current_revisions(engine: AsyncEngine) -> set[str]:
    """Revisions recorded in the database's alembic_version table (empty if none)."""

    def read(connection: Connection) -> set[str]:
        # The readiness watcher calls this every few seconds; alembic would log
        # "Context impl ..." at INFO each time.
        migration_logger = logging.getLogger("alembic.runtime.migration")
        previous = migration_logger.level
        migration_logger.setLevel(logging.WARNING)
        try:
            return set(MigrationContext.configure(connection).get_current_heads())
        finally:
            migration_logger.setLevel(previous)

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def check_migrated(engine: AsyncEngine, config: Config) -> None:
    """Raise :class:`DatabaseNotMigrated` unless the database is at the code's head revision."""
    current = await current_revisions(engine)
    expected = migration_heads(config)
    if current != expected:
        at = ", ".join(sorted(current)) or "no revision (empty database)"
        raise DatabaseNotMigrated(
            f"{DATABASE_NOT_MIGRATED}: it is at {at}, the code expects {', '.join(sorted(expected))}. "
            "Run `make migrate` (alembic upgrade head) with the same DATABASE_URL, or set AUTO_MIGRATE=true."
        )


async def upgrade(engine: AsyncEngine, config: Config, revision: str = "head") -> None:
    """Apply migrations on ``engine`` (used by tests and AUTO_MIGRATE)."""
    await _run_alembic(engine, config, command.upgrade, revision)


async def downgrade(engine: AsyncEngine, config: Config, revision: str) -> None:
    """Revert migrations down to ``revision`` ("base" for none)."""
    await _run_alembic(engine, config, command.downgrade, revision)


async def _run_alembic(engine: AsyncEngine, config: Config, fn: Any, revision: str) -> None:
    def run(connection: Connection) -> None:
        # env.py uses this connection instead of opening its own event loop.
        config.attributes["connection"] = connection
        try:
            fn(config, revision)
        finally:
            config.attributes.pop("connection", None)

    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Outside a transaction (else a no-op): a migration that rebuilds a parent table
            # must not cascade-delete its children when the old table is dropped.
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await connection.commit()
        try:
            async with connection.begin():
                await connection.run_sync(run)
        finally:
            if sqlite:
                await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                await connection.commit()


async def ping(engine: AsyncEngine) -> None:
    """Round-trip to the database."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def wait_for_database(engine: AsyncEngine, *, timeout_s: float, interval_s: float = 1.0) -> None:
    """Retry :func:`ping` until it answers or ``timeout_s`` passes (then re-raise)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            await ping(engine)
            return
        except Exception as exc:
            if loop.time() >= deadline:
                raise
            logger.warning("database not reachable yet, retrying", extra={"error": str(exc)})
            await asyncio.sleep(interval_s)
