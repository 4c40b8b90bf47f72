"""The gateway's pools come from its settings: database connections and upstream keep-alive."""

import aiosqlite
import httpcore
import httpx

from services.gateway.db import create_engine
from shared.http import CountedConnection, RecyclingTransport
from tests.gateway.factories import auth_headers, prediction_body


async def test_database_pool_is_sized_from_settings(app_client, database_url):
    async with app_client(db_pool_size=3, db_max_overflow=2, db_pool_timeout_s=4.5) as client:
        pool = client.app.state.engine.sync_engine.pool
        if database_url.startswith("sqlite"):
            return  # SQLite uses SQLAlchemy's own per-file pool; the sizes apply to MySQL/MariaDB
        assert pool.size() == 3
        assert pool._max_overflow == 2
        assert pool._timeout == 4.5


async def test_upstream_connections_are_recycled_so_new_replicas_get_work(app_client):
    async with app_client(
        upstream_max_connections=7, upstream_connection_max_age_s=3.0, upstream_connection_max_requests=5
    ) as client:
        http = client.app.state.http_client
        transport = http._transport
        assert isinstance(transport, RecyclingTransport)
        assert transport._max_age_s == 3.0
        pool = http._transport._current._pool
        assert pool._max_connections == 7
        connection = pool.create_connection(httpcore.Origin(b"http", b"text", 8002))
        assert isinstance(connection, CountedConnection) and connection._max_requests == 5


async def test_no_database_connection_is_held_while_the_services_work(app_client, upstream, database_url):
    """Requests waiting on a service hold no pooled connection: concurrency is not capped by the pool."""
    held: list[int] = []
    async with app_client(db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=2) as client:
        pool = client.app.state.engine.sync_engine.pool

        def text_service(request: httpx.Request) -> httpx.Response:
            held.append(pool.checkedout())
            return httpx.Response(200, json=prediction_body("happy"))

        upstream["text"].mock(side_effect=text_service)
        headers = await auth_headers(client)
        response = await client.post("/api/predict/text", json={"text": "We won!"}, headers=headers)
        assert response.status_code == 200, response.text
        assert (await client.get(f"/api/predictions/{response.json()['id']}", headers=headers)).status_code == 200
    assert held == [0]


async def test_sqlite_commits_to_a_write_ahead_log_and_skips_needless_rollbacks(tmp_path, monkeypatch):
    rollbacks: list[bool] = []
    real_rollback = aiosqlite.Connection.rollback

    async def counted_rollback(self: aiosqlite.Connection) -> None:
        rollbacks.append(self.in_transaction)
        await real_rollback(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted_rollback)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    try:
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await connection.exec_driver_sql("PRAGMA synchronous")).scalar() == 1  # NORMAL
            await connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            await connection.commit()
        rollbacks.clear()  # SQLAlchemy rolls back once after its first connect
        async with engine.connect() as connection:
            await connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            await connection.commit()
        assert rollbacks == []  # committed: nothing to roll back when the pool takes it back
        async with engine.connect() as connection:
            await connection.exec_driver_sql("INSERT INTO t VALUES (2)")  # never committed
        assert rollbacks == [True]
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("SELECT x FROM t")).scalars().all() == [1]
    finally:
        await engine.dispose()
