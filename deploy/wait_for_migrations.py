"""Wait until the database schema is at the Alembic head (the gateway's Kubernetes initContainer).

The migration Job runs ``alembic upgrade head`` once; gateway pods wait here instead of
crash-looping on an un-migrated database, and never run migrations concurrently.

    python wait_for_migrations.py --timeout 600
Reads ALEMBIC_CONFIG (default alembic.ini) and DATABASE_URL, like ``alembic`` itself.
"""

import argparse
import asyncio
import os
import sys
import time

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def _current_heads(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def current_heads(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_heads)
    finally:
        await engine.dispose()


async def wait(url: str, config: Config, timeout_s: float, interval_s: float) -> str | None:
    """``None`` once the database is at head, else why not (after ``timeout_s``)."""
    expected = set(ScriptDirectory.from_config(config).get_heads())
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            current = await current_heads(url)
            reason = None if current == expected else f"database at {sorted(current)}, code at {sorted(expected)}"
        except Exception as exc:  # unreachable, no credentials yet, ...: keep waiting
            reason = f"database unreachable: {type(exc).__name__}: {exc}"
        if reason is None or time.monotonic() >= deadline:
            return reason
        print(f"waiting for migrations: {reason}", file=sys.stderr, flush=True)
        await asyncio.sleep(interval_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait before failing")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between checks")
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    config = Config(os.environ.get("ALEMBIC_CONFIG", "alembic.ini"))
    reason = asyncio.run(wait(url, config, args.timeout, args.interval))
    if reason:
        print(f"gave up after {args.timeout:.0f}s: {reason}", file=sys.stderr)
        return 1
    print("database schema is at head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
