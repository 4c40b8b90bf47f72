"""The gateway fixtures (both database backends, fake upstream services) for the video tests."""

from tests.gateway.conftest import (  # noqa: F401 (fixtures)
    app_client,
    clean_db,
    client,
    database_url,
    db_engine,
    upstream,
)
