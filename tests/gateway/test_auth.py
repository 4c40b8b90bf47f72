"""Registration, login, tokens (expiry, tampering, revocation) and API keys, on both databases."""

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import ValidationError

from services.gateway import auth
from services.gateway.errors import (
    DUPLICATE_USER,
    INVALID_API_KEY,
    INVALID_CREDENTIALS,
    INVALID_TOKEN,
    NOT_AUTHENTICATED,
    REVOKED_TOKEN,
    SESSION_REQUIRED,
)
from services.gateway.settings import DEV_SECRET_KEY, Settings
from tests.gateway.factories import PASSWORD, auth_headers, login, register


def _b64(data: dict[str, object]) -> str:
    encoded = json.dumps(data, default=lambda d: int(d.timestamp())).encode()
    return base64.urlsafe_b64encode(encoded).rstrip(b"=").decode()


def _claims(sub: str = "1", **overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": sub,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": "abc123",
        "typ": "access",
    }
    claims.update(overrides)
    return claims


async def test_register_returns_the_user_without_secrets(client):
    response = await register(client, "Alice")
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "alice"
    assert body["email"] == "alice@example.com"
    assert "password" not in json.dumps(body)


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "ALICE", "email": "other@example.com", "password": PASSWORD},
        {"username": "other", "email": "Alice@Example.com", "password": PASSWORD},
    ],
)
async def test_duplicate_username_or_email_is_409(client, payload):
    await register(client, "alice")
    response = await client.post("/api/register", json=payload)
    assert response.status_code == 409
    assert response.json()["detail"] == DUPLICATE_USER
    assert response.json()["code"] == "conflict"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "bob", "email": "bob@example.com", "password": "short"}, "password"),
        ({"username": "bob", "email": "bob@example.com", "password": "é" * 37}, "password"),  # 74 bytes
        ({"username": "bob", "email": "not-an-email", "password": PASSWORD}, "email"),
        ({"username": "b!", "email": "bob@example.com", "password": PASSWORD}, "username"),
        ({"username": "bob", "email": "bob@example.com"}, "password"),
    ],
)
async def test_invalid_registration_is_422_in_the_error_shape(client, payload, field):
    response = await client.post("/api/register", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_input"
    assert field in body["detail"]
    assert PASSWORD not in response.text


async def test_login_returns_a_bearer_token_that_opens_the_profile(client):
    await register(client)
    response = await login(client)
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 3600
    claims = jwt.decode(token["access_token"], DEV_SECRET_KEY, algorithms=["HS256"])
    assert {"sub", "exp", "iat", "jti"} <= claims.keys()
    profile = await client.get("/api/user/profile", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert profile.status_code == 200
    assert profile.json()["username"] == "alice"


async def test_login_by_email(client):
    await register(client)
    response = await client.post("/api/login", data={"username": "ALICE@example.com", "password": PASSWORD})
    assert response.status_code == 200


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong password"), ("nobody", PASSWORD)])
async def test_bad_credentials_are_401_with_one_message(client, username, password):
    await register(client)
    response = await login(client, username, password)
    assert response.status_code == 401
    assert response.json()["detail"] == INVALID_CREDENTIALS
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_user_costs_a_bcrypt_check_too(client, monkeypatch):
    calls: list[str] = []
    original = auth._verify_sync

    def spy(password: str, hashed: str) -> bool:
        calls.append(hashed)
        return original(password, hashed)

    monkeypatch.setattr(auth, "_verify_sync", spy)
    await register(client)
    assert (await login(client, "nobody")).status_code == 401
    assert (await login(client, "alice", "wrong password")).status_code == 401
    assert len(calls) == 2
    assert all(h.startswith("$2b$04$") for h in calls)


async def test_overlong_password_at_login_is_rejected_not_truncated(client):
    await register(client, password="p" * 72)
    assert (await login(client, password="p" * 72)).status_code == 200
    assert (await login(client, password="p" * 72 + "extra")).status_code == 401


async def test_login_form_is_required(client):
    response = await client.post("/api/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"


async def test_protected_routes_need_credentials(client):
    response = await client.get("/api/user/profile")
    assert response.status_code == 401
    assert response.json()["detail"] == NOT_AUTHENTICATED
    assert response.headers["www-authenticate"] == "Bearer"


async def test_logout_revokes_the_token(client):
    headers = await auth_headers(client)
    assert (await client.post("/api/logout", headers=headers)).status_code == 204
    response = await client.get("/api/user/profile", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == REVOKED_TOKEN
    # A new login gets a new, working token.
    token = (await login(client)).json()["access_token"]
    assert (await client.get("/api/user/profile", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_logout_twice_is_refused_the_second_time(client):
    headers = await auth_headers(client)
    assert (await client.post("/api/logout", headers=headers)).status_code == 204
    assert (await client.post("/api/logout", headers=headers)).status_code == 401


async def test_expired_token_is_refused(app_client):
    async with app_client(access_token_expire_minutes=1) as client:
        await register(client)
        user_id = (await client.get("/api/user/profile", headers=await _fresh(client))).json()["id"]
        expired = jwt.encode(
            _claims(
                str(user_id), iat=datetime.now(UTC) - timedelta(hours=2), exp=datetime.now(UTC) - timedelta(hours=1)
            ),
            DEV_SECRET_KEY,
            algorithm="HS256",
        )
        response = await client.get("/api/user/profile", headers={"Authorization": f"Bearer {expired}"})
        assert response.status_code == 401
        assert response.json()["detail"] == INVALID_TOKEN


async def _fresh(client) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await login(client)).json()['access_token']}"}


async def _user_id(client) -> str:
    return str((await client.get("/api/user/profile", headers=await _fresh(client))).json()["id"])


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda sub: jwt.encode(_claims(sub), "another-secret-key-of-enough-length!", algorithm="HS256"),
            id="wrong-signature",
        ),
        pytest.param(
            lambda sub: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(sub))}.",
            id="alg-none",
        ),
        pytest.param(lambda sub: jwt.encode(_claims(sub), DEV_SECRET_KEY, algorithm="HS512"), id="wrong-alg-hs512"),
        pytest.param(
            lambda sub: jwt.encode(
                {k: v for k, v in _claims(sub).items() if k != "jti"}, DEV_SECRET_KEY, algorithm="HS256"
            ),
            id="missing-jti",
        ),
        pytest.param(
            lambda sub: jwt.encode(
                {k: v for k, v in _claims(sub).items() if k != "exp"}, DEV_SECRET_KEY, algorithm="HS256"
            ),
            id="missing-exp",
        ),
        pytest.param(lambda _: jwt.encode(_claims("999999"), DEV_SECRET_KEY, algorithm="HS256"), id="unknown-user"),
        pytest.param(lambda _: "not.a.jwt", id="garbage"),
    ],
)
async def test_forged_or_incomplete_tokens_are_refused(client, forge):
    await register(client)
    sub = await _user_id(client)
    # Sanity: the same claims signed properly are accepted, so each refusal is about the forgery.
    good = jwt.encode(_claims(sub), DEV_SECRET_KEY, algorithm="HS256")
    assert (await client.get("/api/user/profile", headers={"Authorization": f"Bearer {good}"})).status_code == 200
    response = await client.get("/api/user/profile", headers={"Authorization": f"Bearer {forge(sub)}"})
    assert response.status_code == 401
    assert response.json()["detail"] == INVALID_TOKEN


async def test_tampered_payload_is_refused(client):
    headers = await auth_headers(client)
    header, payload, signature = headers["Authorization"].removeprefix("Bearer ").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(int(claims["sub"]) + 1)
    forged = f"{header}.{_b64(claims)}.{signature}"
    response = await client.get("/api/user/profile", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_production_refuses_the_default_secret():
    internal = {"internal_token": "i" * 40}  # production also requires it (checked in shared/settings)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production", **internal)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production", secret_key="short", **internal)  # type: ignore[call-arg]
    settings = Settings(_env_file=None, environment="production", secret_key="x" * 40, **internal)  # type: ignore[call-arg]
    assert settings.secret_key.get_secret_value() == "x" * 40
    assert "x" * 40 not in repr(settings)


# --- API keys ---------------------------------------------------------------------------------


async def test_api_key_lifecycle(client):
    headers = await auth_headers(client)
    created = await client.post("/api/keys", json={"name": "importer"}, headers=headers)
    assert created.status_code == 201
    key = created.json()
    assert key["key"].startswith("emo_") and len(key["key"]) > 40
    assert key["key"].startswith(key["prefix"])

    listed = await client.get("/api/keys", headers=headers)
    assert listed.status_code == 200
    assert [k["name"] for k in listed.json()] == ["importer"]
    assert "key" not in listed.json()[0]
    assert key["key"] not in listed.text

    by_key = await client.get("/api/user/profile", headers={"X-API-Key": key["key"]})
    assert by_key.status_code == 200
    assert by_key.json()["username"] == "alice"
    assert (await client.get("/api/keys", headers=headers)).json()[0]["last_used_at"] is not None

    assert (await client.delete(f"/api/keys/{key['id']}", headers=headers)).status_code == 204
    refused = await client.get("/api/user/profile", headers={"X-API-Key": key["key"]})
    assert refused.status_code == 401
    assert refused.json()["detail"] == INVALID_API_KEY
    assert (await client.get("/api/keys", headers=headers)).json()[0]["revoked_at"] is not None


async def test_api_key_is_stored_hashed(client):
    headers = await auth_headers(client)
    secret = (await client.post("/api/keys", json={"name": "k"}, headers=headers)).json()["key"]
    async with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        from sqlalchemy import select

        from services.gateway.models import ApiKey

        stored = (await session.scalars(select(ApiKey))).one()
    assert stored.key_hash == auth.hash_api_key(secret)
    assert secret not in (stored.key_hash, stored.prefix)


@pytest.mark.parametrize("value", ["emo_" + "x" * 43, "nonsense"])
async def test_unknown_api_key_is_401(client, value):
    response = await client.get("/api/user/profile", headers={"X-API-Key": value})
    assert response.status_code == 401
    assert response.json()["detail"] == INVALID_API_KEY


async def test_cannot_revoke_another_users_key(client):
    alice = await auth_headers(client, "alice")
    bob = await auth_headers(client, "bob")
    key = (await client.post("/api/keys", json={"name": "alice's"}, headers=alice)).json()
    response = await client.delete(f"/api/keys/{key['id']}", headers=bob)
    assert response.status_code == 404
    assert (await client.get("/api/user/profile", headers={"X-API-Key": key["key"]})).status_code == 200


async def test_logout_with_an_api_key_is_403(client):
    headers = await auth_headers(client)
    secret = (await client.post("/api/keys", json={"name": "k"}, headers=headers)).json()["key"]
    for path in ("/api/logout", "/api/logout/all"):
        response = await client.post(path, headers={"X-API-Key": secret})
        assert response.status_code == 403
        assert response.json()["detail"] == SESSION_REQUIRED


async def test_blank_key_name_is_422(client):
    headers = await auth_headers(client)
    assert (await client.post("/api/keys", json={"name": "   "}, headers=headers)).status_code == 422
