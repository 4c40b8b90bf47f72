"""The gateway's pools come from its settings: database connections and upstream keep-alive."""

from shared.http import RecyclingTransport


async def test_database_pool_is_sized_from_settings(app_client, database_url):
    async with app_client(db_pool_size=3, db_max_overflow=2, db_pool_timeout_s=4.5) as client:
        pool = client.app.state.engine.sync_engine.pool
        if database_url.startswith("sqlite"):
            return  # SQLite uses SQLAlchemy's own per-file pool; the sizes apply to MySQL/MariaDB
        assert pool.size() == 3
        assert pool._max_overflow == 2
        assert pool._timeout == 4.5


async def test_upstream_connections_are_recycled_so_new_replicas_get_work(app_client):
    async with app_client(upstream_max_connections=7, upstream_connection_max_age_s=3.0) as client:
        http = client.app.state.http_client
        transport = http._transport
        assert isinstance(transport, RecyclingTransport)
        assert transport._max_age_s == 3.0
        assert http._transport._current._pool._max_connections == 7
