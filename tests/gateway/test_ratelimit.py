"""Rate limits: per IP, per user / API key, stricter on auth; memory and Redis storage."""

import os
import uuid

import pytest
import redis

from tests.gateway.factories import auth_headers, login, register

REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")


def assert_429(response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "rate_limited"
    assert "Rate limit exceeded" in body["detail"]
    assert body["request_id"]
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_login_is_limited_per_ip(app_client):
    async with app_client(rate_limit_auth="3/minute") as client:
        await register(client)  # 1
        assert (await login(client)).status_code == 200  # 2
        assert (await login(client, password="wrong password")).status_code == 401  # 3
        assert_429(await login(client))
        assert_429(await register(client, "bob"))
        # Other routes are not under the auth limit.
        assert (await client.get("/livez")).status_code == 200


async def test_every_api_route_is_limited_per_ip(app_client):
    async with app_client(rate_limit_ip="2/minute") as client:
        assert (await client.get("/api/health/services")).status_code != 429
        assert (await client.get("/api/user/profile")).status_code == 401
        assert_429(await client.get("/api/user/profile"))
        # Probes are not rate limited (orchestrators poll them).
        for _ in range(3):
            assert (await client.get("/livez")).status_code == 200


async def test_users_are_limited_separately(app_client):
    async with app_client(rate_limit_user="2/minute") as client:
        alice = await auth_headers(client, "alice")
        bob = await auth_headers(client, "bob")
        for _ in range(2):
            assert (await client.get("/api/user/profile", headers=alice)).status_code == 200
        assert_429(await client.get("/api/user/profile", headers=alice))
        assert (await client.get("/api/user/profile", headers=bob)).status_code == 200


async def test_each_api_key_has_its_own_budget(app_client):
    async with app_client(rate_limit_user="3/minute") as client:
        headers = await auth_headers(client)
        key = (await client.post("/api/keys", json={"name": "k"}, headers=headers)).json()["key"]  # 1 for the user
        for _ in range(3):
            assert (await client.get("/api/user/profile", headers={"X-API-Key": key})).status_code == 200
        assert_429(await client.get("/api/user/profile", headers={"X-API-Key": key}))
        assert (await client.get("/api/user/profile", headers=headers)).status_code == 200


async def test_limits_can_be_disabled(app_client):
    async with app_client(rate_limit_ip="1/minute", rate_limit_enabled=False) as client:
        for _ in range(3):
            assert (await client.get("/api/user/profile")).status_code == 401


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis unreachable at {REDIS_URL}: {exc}")
    yield client
    client.close()


async def test_redis_storage_is_shared_between_app_instances(app_client, redis_client):
    prefix = f"test-gateway-{uuid.uuid4().hex}"
    settings = {"rate_limit_storage_uri": REDIS_URL, "rate_limit_key_prefix": prefix, "rate_limit_auth": "3/minute"}
    try:
        async with app_client(**settings) as first:
            await register(first)
            assert (await login(first)).status_code == 200
        # A second gateway replica sees the same counters.
        async with app_client(**settings) as second:
            assert (await login(second)).status_code == 200
            assert_429(await login(second))
        keys = [k.decode() for k in redis_client.scan_iter(match=f"*{prefix}*")]
        assert keys, "no counters were written to Redis"
    finally:
        for key in redis_client.scan_iter(match=f"*{prefix}*"):
            redis_client.delete(key)


async def test_unreachable_redis_falls_back_to_memory_limits(app_client):
    async with app_client(rate_limit_storage_uri="redis://127.0.0.1:1/0", rate_limit_auth="2/minute") as client:
        await register(client)
        assert (await login(client)).status_code == 200
        assert_429(await login(client))
