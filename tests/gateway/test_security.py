"""Hardening of the gateway (issue 11): body bombs, integer bounds, key scopes, id reuse, tokens, 405s.

Every DB-backed test runs on SQLite and on MariaDB (see conftest).
"""

import asyncio
import importlib.util
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
import uvicorn
from sqlalchemy import delete, event, select

from services.gateway.auth import MAX_ID
from services.gateway.bodylimits import JSON_TOO_DEEP, JSON_TOO_MANY_ITEMS
from services.gateway.errors import INVALID_TOKEN, MISSING_SCOPE, REVOKED_TOKEN, SESSION_REQUIRED
from services.gateway.models import Prediction, User
from services.gateway.routes.auth import INVALID_GRANT_TYPE
from services.gateway.settings import DEV_SECRET_KEY, PROJECT_ROOT
from tests.gateway.factories import PASSWORD, auth_headers, login, register
from tests.gateway.test_history import add_prediction

REPO = PROJECT_ROOT
HUGE = 2**63
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def signed(claims: dict[str, object]) -> dict[str, str]:
    """A bearer header with ``claims`` signed by the test secret (the forger knows the key)."""
    return {"Authorization": f"Bearer {jwt.encode(claims, DEV_SECRET_KEY, algorithm='HS256')}"}


def claims(sub: object = "1", **overrides: object) -> dict[str, object]:
    now = int(time.time())
    values: dict[str, object] = {"sub": sub, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, "typ": "access"}
    values.update(overrides)
    return values


async def user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return int((await client.get("/api/user/profile", headers=headers)).json()["id"])


async def new_key(client: httpx.AsyncClient, headers: dict[str, str], *scopes: str) -> str:
    body: dict[str, object] = {"name": "k", **({"scopes": list(scopes)} if scopes else {})}
    response = await client.post("/api/keys", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


# --- 1. JSON bodies are bounded before they are parsed and validated -------------------------------


async def test_a_huge_json_body_is_413_at_once_and_the_loop_stays_free(client):
    """The 4.8 MB / 300k-key register body of the attack report: refused while it streams."""
    body = json.dumps({f"k{i}": i for i in range(300_000)}).encode()
    assert len(body) > 4_000_000

    async def probe() -> float:
        started = time.perf_counter()
        assert (await client.get("/livez")).status_code == 200
        return time.perf_counter() - started

    started = time.perf_counter()
    response, probe_s = await asyncio.gather(
        client.post("/api/register", content=body, headers={"Content-Type": "application/json"}), probe()
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert "request_id" in response.json()
    assert time.perf_counter() - started < 1.0
    assert probe_s < 1.0


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        # Under the byte limit but thousands of unexpected keys: one short 422, no per-key list.
        (json.dumps({f"k{i}": 0 for i in range(10_000)}), JSON_TOO_MANY_ITEMS.format(limit=256)),
        (json.dumps({"text": "hi", "extra": list(range(5000))}), JSON_TOO_MANY_ITEMS.format(limit=256)),
        ("[" * 20_000 + "]" * 20_000, JSON_TOO_DEEP.format(limit=32)),
        ('{"text": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}", JSON_TOO_DEEP.format(limit=32)),
    ],
    ids=["many-keys", "long-list", "deep-array", "deep-object"],
)
async def test_json_bombs_are_one_short_422(client, body, detail):
    for path in ("/api/register", "/api/predict/text"):
        response = await client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code in (401, 422)  # predict/text: the body is checked before auth
        if response.status_code == 422:
            assert response.json()["detail"] == detail
            assert len(response.content) < 1000


async def test_brackets_and_commas_inside_strings_do_not_count(client, upstream):
    headers = await auth_headers(client)
    text = '[[[[{{{{,,,,"\\"' * 300
    response = await client.post("/api/predict/text", json={"text": text}, headers=headers)
    assert response.status_code == 200, response.text
    assert json.loads(upstream.routes["text"].calls[0].request.content)["text"] == text


async def test_unexpected_keys_are_refused(client):
    headers = await auth_headers(client)
    response = await client.post("/api/predict/text", json={"text": "hi", "admin": True}, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"


# --- 4. Integers are bounded: no OverflowError, no 500 -------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/predictions?offset={HUGE}"),
        ("GET", f"/api/predictions?limit={HUGE}"),
        ("GET", f"/api/predictions/{HUGE}"),
        ("DELETE", f"/api/predictions/{HUGE}"),
        ("GET", f"/api/predictions/{MAX_ID + 1}"),
        ("DELETE", f"/api/keys/{HUGE}"),
        ("DELETE", f"/api/keys/{10**40}"),
        ("GET", "/api/predictions/0"),
    ],
)
async def test_out_of_range_integers_are_422(client, method, path):
    headers = await auth_headers(client)
    response = await client.request(method, path, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_input"


async def test_the_largest_id_is_a_plain_404(client):
    headers = await auth_headers(client)
    assert (await client.get(f"/api/predictions/{MAX_ID}", headers=headers)).status_code == 404
    assert (await client.delete(f"/api/keys/{MAX_ID}", headers=headers)).status_code == 404


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": str(HUGE)},
        {"sub": str(10**30)},
        {"sub": "-1"},
        {"sub": "0"},
        {"sub": "1e3"},
        {"sub": " 1"},
        {"sub": 1},
        {"sub": True},
        {"exp": 10**20},
        {"exp": HUGE},
        {"exp": 1e300},
        {"iat": -(10**20)},
        {"ver": HUGE},
        {"ver": "0"},
        {"jti": "x" * 65},
        {"jti": 5},
    ],
    ids=repr,
)
async def test_signed_tokens_with_edge_claims_are_401(client, overrides):
    await register(client)
    response = await client.get("/api/user/profile", headers=signed(claims(**overrides)))
    assert response.status_code == 401
    assert response.json()["detail"] == INVALID_TOKEN
    assert "request_id" in response.json()


# --- 5. API keys: scopes, and no key management with a key ---------------------------------------


async def test_a_new_key_defaults_to_predict_and_history_read(client):
    headers = await auth_headers(client)
    created = (await client.post("/api/keys", json={"name": "k"}, headers=headers)).json()
    assert created["scopes"] == ["predict", "history:read"]
    listed = (await client.get("/api/keys", headers=headers)).json()
    assert listed[0]["scopes"] == ["predict", "history:read"]


async def test_a_key_cannot_manage_keys_or_log_out(client):
    headers = await auth_headers(client)
    key = {"X-API-Key": await new_key(client, headers, "predict", "history:read", "history:write")}
    key_id = (await client.get("/api/keys", headers=headers)).json()[0]["id"]
    for method, path, body in [
        ("POST", "/api/keys", {"name": "minted"}),
        ("GET", "/api/keys", None),
        ("DELETE", f"/api/keys/{key_id}", None),
        ("POST", "/api/logout", None),
        ("POST", "/api/logout/all", None),
    ]:
        response = await client.request(method, path, json=body, headers=key)
        assert response.status_code == 403, (method, path)
        assert response.json()["detail"] == SESSION_REQUIRED
    keys = (await client.get("/api/keys", headers=headers)).json()
    assert [k["name"] for k in keys] == ["k"] and keys[0]["revoked_at"] is None


async def test_scopes_limit_what_a_key_may_do(client, upstream):
    headers = await auth_headers(client)
    predict_only = {"X-API-Key": await new_key(client, headers, "predict")}
    read_only = {"X-API-Key": await new_key(client, headers, "history:read")}

    made = await client.post("/api/predict/text", json={"text": "hi"}, headers=predict_only)
    assert made.status_code == 200
    prediction_id = made.json()["id"]
    for path in ("/api/predictions", f"/api/predictions/{prediction_id}", "/api/statistics"):
        refused = await client.get(path, headers=predict_only)
        assert refused.status_code == 403
        assert refused.json()["detail"] == MISSING_SCOPE.format(scope="history:read")

    refused = await client.post("/api/predict/text", json={"text": "hi"}, headers=read_only)
    assert refused.status_code == 403
    assert refused.json()["detail"] == MISSING_SCOPE.format(scope="predict")
    assert (await client.get("/api/predictions", headers=read_only)).json()["total"] == 1
    assert (await client.get("/api/predictions/export.csv", headers=read_only)).status_code == 200
    deleting = await client.delete(f"/api/predictions/{prediction_id}", headers=read_only)
    assert deleting.status_code == 403
    assert deleting.json()["detail"] == MISSING_SCOPE.format(scope="history:write")
    assert upstream.routes["text"].call_count == 1

    both = {"X-API-Key": await new_key(client, headers, "history:read", "history:write")}
    assert (await client.delete(f"/api/predictions/{prediction_id}", headers=both)).status_code == 204


async def test_unknown_or_empty_scopes_are_422(client):
    headers = await auth_headers(client)
    for scopes in (["admin"], [], ["keys:write"]):
        response = await client.post("/api/keys", json={"name": "k", "scopes": scopes}, headers=headers)
        assert response.status_code == 422, scopes


async def test_openapi_shows_scopes_and_session_only_operations(client):
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    assert paths["/api/predict/text"]["post"]["security"] == [
        {"OAuth2PasswordBearer": []},
        {"APIKeyHeader": ["predict"]},
    ]
    assert {"APIKeyHeader": ["history:read"]} in paths["/api/predictions"]["get"]["security"]
    assert {"APIKeyHeader": ["history:read", "history:write"]} in paths["/api/predictions/{prediction_id}"]["delete"][
        "security"
    ]
    for path, method in (("/api/keys", "post"), ("/api/keys", "get"), ("/api/logout", "post")):
        assert paths[path][method]["security"] == [{"OAuth2PasswordBearer": []}], path
    assert "history:read" in schema["components"]["securitySchemes"]["APIKeyHeader"]["description"]
    assert "scopes" in schema["components"]["schemas"]["ApiKeyCreate"]["properties"]


# --- 6. Ids are never reused; tokens are bound to their account --------------------------------


async def test_prediction_ids_are_not_reused_after_delete(client):
    headers = await auth_headers(client)
    owner = await user_id(client, headers)
    first = await add_prediction(client, owner, kind="text", label="happy", created_at=NOW)
    second = await add_prediction(client, owner, kind="text", label="sad", created_at=NOW)
    assert (await client.delete(f"/api/predictions/{second}", headers=headers)).status_code == 204
    third = await add_prediction(client, owner, kind="text", label="sad", created_at=NOW)
    assert third > second > first
    async with client.app.state.sessionmaker() as session:
        await session.execute(delete(Prediction))
        await session.commit()
    assert await add_prediction(client, owner, kind="text", label="sad", created_at=NOW) > third


async def test_a_deleted_users_token_never_acts_as_the_next_user(client):
    """The report's attack: delete the newest user, register another; the old token must not work."""
    old_headers = await auth_headers(client, "mallory")
    old_id = await user_id(client, old_headers)
    async with client.app.state.sessionmaker() as session:
        await session.execute(delete(User).where(User.id == old_id))
        await session.commit()
    new_headers = await auth_headers(client, "victim")
    new_id = await user_id(client, new_headers)
    assert new_id > old_id
    refused = await client.get("/api/user/profile", headers=old_headers)
    assert refused.status_code == 401
    # Even a token naming the new id is refused if it was issued before that account existed.
    backdated = claims(sub=str(new_id), iat=int(time.time()) - 3600)
    assert (await client.get("/api/user/profile", headers=signed(backdated))).status_code == 401


async def test_log_out_everywhere_revokes_every_earlier_token(client):
    await register(client)
    first = {"Authorization": f"Bearer {(await login(client)).json()['access_token']}"}
    second = {"Authorization": f"Bearer {(await login(client)).json()['access_token']}"}
    key = {"X-API-Key": await new_key(client, first)}
    assert (await client.post("/api/logout/all", headers=first)).status_code == 204
    for headers in (first, second):
        refused = await client.get("/api/user/profile", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["detail"] == REVOKED_TOKEN
    again = {"Authorization": f"Bearer {(await login(client)).json()['access_token']}"}
    assert (await client.get("/api/user/profile", headers=again)).status_code == 200
    # API keys are revoked one by one (DELETE /api/keys/{id}), not by logging out.
    assert (await client.get("/api/user/profile", headers=key)).status_code == 200


async def test_a_token_from_before_log_out_everywhere_with_a_forged_version_is_refused(client):
    headers = await auth_headers(client)
    uid = await user_id(client, headers)
    assert (await client.post("/api/logout/all", headers=headers)).status_code == 204
    for version in (0, 2, 7):
        forged = signed(claims(sub=str(uid), ver=version))
        assert (await client.get("/api/user/profile", headers=forged)).status_code == 401


async def _statements_during(client: httpx.AsyncClient, request: httpx.Request) -> tuple[int, list[str]]:
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # noqa: ARG001
        statements.append(statement.split()[0].upper())

    engine = client.app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = await client.send(request)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return response.status_code, statements


async def test_auth_is_one_database_round_trip(client):
    headers = await auth_headers(client)
    status, statements = await _statements_during(
        client, client.build_request("GET", "/api/user/profile", headers=headers)
    )
    assert status == 200
    assert statements == ["SELECT"]

    key = {"X-API-Key": await new_key(client, headers)}
    await client.get("/api/user/profile", headers=key)  # first use writes last_used_at (once a minute)
    status, statements = await _statements_during(client, client.build_request("GET", "/api/user/profile", headers=key))
    assert status == 200
    assert statements == ["SELECT"]


async def test_user_ids_keep_growing_on_the_database(client):
    await register(client, "first")
    async with client.app.state.sessionmaker() as session:
        first = await session.scalar(select(User.id).where(User.username == "first"))
        await session.execute(delete(User).where(User.id == first))
        await session.commit()
    await register(client, "second")
    async with client.app.state.sessionmaker() as session:
        second = await session.scalar(select(User.id).where(User.username == "second"))
    assert second > first


# --- 10. Smaller items -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["to=0.5", "from=1700000000", "to=1e9", "from=-1", "to=true"])
async def test_numbers_are_not_dates(client, query):
    headers = await auth_headers(client)
    for path in ("/api/predictions", "/api/statistics", "/api/predictions/export.csv"):
        response = await client.get(f"{path}?{query}", headers=headers)
        assert response.status_code == 422, (path, query)
        assert "ISO 8601" in response.json()["detail"]


async def test_iso_dates_still_work(client):
    headers = await auth_headers(client)
    for query in ("from=2026-11-20", "to=2026-11-20T10:30:00Z", "to=2026-11-20 10:30:00"):
        assert (await client.get(f"/api/predictions?{query}", headers=headers)).status_code == 200, query


@pytest.mark.parametrize("grant_type", ["", "client_credentials", "PASSWORD"])
async def test_login_refuses_a_wrong_or_empty_grant_type(client, grant_type):
    await register(client)
    data = {"username": "alice", "password": PASSWORD, "grant_type": grant_type}
    response = await client.post("/api/login", data=data)
    assert response.status_code == 422
    if grant_type == "":
        assert response.json()["detail"] == INVALID_GRANT_TYPE


async def test_login_with_grant_type_password_is_not_cached(client):
    await register(client)
    data = {"username": "alice", "password": PASSWORD, "grant_type": "password"}
    response = await client.post("/api/login", data=data)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert (await login(client)).headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/predictions/export.csv", "GET"),
        ("POST", "/api/predictions/export.csv", "GET"),
        ("PUT", "/api/predictions/5", "DELETE, GET"),
        ("HEAD", "/api/predictions/5", "DELETE, GET"),
        ("PATCH", "/api/keys/5", "DELETE"),
        ("DELETE", "/api/keys", "GET, POST"),
        ("GET", "/api/predict/text", "POST"),
        ("GET", "/api/logout", "POST"),
    ],
)
async def test_405_lists_every_allowed_method(client, method, path, allow):
    headers = await auth_headers(client)
    response = await client.request(method, path, headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    if method != "HEAD":
        assert response.json()["code"] == "method_not_allowed"
        assert "request_id" in response.json()


async def test_an_exp_centuries_ahead_is_refused(client):
    """exp far beyond the lifetime is accepted by PyJWT: refusing it is ours (bounded, no overflow)."""
    await register(client)
    far = int((datetime.now(UTC) + timedelta(days=365 * 300)).timestamp())
    response = await client.get("/api/user/profile", headers=signed(claims(exp=far)))
    assert response.status_code == 401


# --- 7. X-Forwarded-For is believed only from configured proxies ----------------------------------


def _run_local():
    spec = importlib.util.spec_from_file_location("run_local_for_security", REPO / "deploy" / "run_local.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _served_like_run_local(app, env: dict[str, str]):
    """The app wrapped as uvicorn wraps it with the flags deploy/run_local.py (and the entrypoint) pass."""
    options = _run_local().server_options(env)
    kwargs: dict[str, object] = {"proxy_headers": "--no-proxy-headers" not in options}
    if "--forwarded-allow-ips" in options:
        kwargs["forwarded_allow_ips"] = options[options.index("--forwarded-allow-ips") + 1]
    config = uvicorn.Config(app, **kwargs)
    config.load()
    return config.loaded_app


async def _login_codes(app, peer: str, attempts: int) -> list[int]:
    transport = httpx.ASGITransport(app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        return [
            (
                await client.post(
                    "/api/login",
                    data={"username": "nobody", "password": "wrong-password"},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                )
            ).status_code
            for i in range(attempts)
        ]


async def test_x_forwarded_for_from_loopback_does_not_bypass_the_login_limit(app_client, monkeypatch):
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    async with app_client(rate_limit_auth="3/minute") as client:
        served = _served_like_run_local(client.app, {})
        assert await _login_codes(served, "127.0.0.1", 5) == [401, 401, 401, 429, 429]


async def test_uvicorns_own_default_would_have_let_it_through(app_client, monkeypatch):
    """The control: uvicorn's default trusts 127.0.0.1, so each forged address got a fresh budget."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    async with app_client(rate_limit_auth="3/minute") as client:
        config = uvicorn.Config(client.app)
        config.load()
        assert await _login_codes(config.loaded_app, "127.0.0.1", 5) == [401] * 5


async def test_a_configured_proxy_is_believed_and_others_are_not(app_client):
    async with app_client(rate_limit_auth="3/minute") as client:
        served = _served_like_run_local(client.app, {"FORWARDED_ALLOW_IPS": "10.0.0.0/8"})
        # Through the proxy each client has its own budget ...
        assert await _login_codes(served, "10.1.2.3", 5) == [401] * 5
        # ... while a direct client's forged header is ignored (one budget for its real address).
        assert await _login_codes(served, "192.0.2.7", 5) == [401, 401, 401, 429, 429]


@pytest.mark.parametrize(
    "query",
    [
        "from=0001-01-01T00:00:00%2B05:00",
        "to=9999-12-31T23:59:59-05:00",
        "from=0001-01-01&to=9999-12-31",
        "to=9999-12-31T23:59:59.999999%2B00:00",
    ],
)
async def test_extreme_dates_are_clamped_not_500(client, query):
    headers = await auth_headers(client)
    owner = await user_id(client, headers)
    await add_prediction(client, owner, kind="text", label="happy", created_at=NOW)
    for path in ("/api/predictions", "/api/statistics", "/api/predictions/export.csv"):
        response = await client.get(f"{path}?{query}", headers=headers)
        assert response.status_code == 200, (path, query, response.text)
    page = (await client.get(f"/api/predictions?{query}", headers=headers)).json()
    assert page["total"] == 1  # every bound here includes the stored prediction
