"""Passwords (bcrypt), access tokens (PyJWT, HS256) and API keys (SHA-256 of a random secret).

bcrypt only reads the first 72 bytes of a password; bcrypt >= 5 raises on longer input.
Registration therefore rejects passwords over 72 UTF-8 bytes (422) instead of silently
truncating them, and login treats such a password as wrong (after the same hashing work).
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

import anyio.to_thread
import bcrypt
import jwt

from services.gateway.models import utcnow

BCRYPT_MAX_BYTES: Final = 72
#: Largest id the schema has (a signed 32-bit INT on MySQL/MariaDB); path ids and ``sub`` are bounded by it.
MAX_ID: Final = 2**31 - 1
#: Token times beyond this (year 2286) are refused, never converted (10**20 would overflow).
MAX_TIMESTAMP: Final = 10**10
#: ``revoked_tokens.jti`` holds up to 64 characters.
MAX_JTI_LENGTH: Final = 64
#: What an API key may be allowed to do; user sessions (bearer tokens) may do everything.
API_KEY_SCOPES: Final = {
    "predict": "Make predictions (POST /api/predict/*).",
    "history:read": "Read your history, statistics and CSV export.",
    "history:write": "Delete predictions from your history.",
}
#: Scopes of a new API key when the request names none.
DEFAULT_NEW_KEY_SCOPES: Final = ("predict", "history:read")
JWT_ALGORITHM: Final = "HS256"
TOKEN_TYPE: Final = "access"
API_KEY_PREFIX: Final = "emo_"
#: Characters of the key kept in clear to identify it in listings ("emo_" + 8).
API_KEY_VISIBLE_CHARS: Final = 12


def _hash_sync(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def _verify_sync(password: str, hashed: str) -> bool:
    encoded = password.encode()
    if len(encoded) > BCRYPT_MAX_BYTES:
        # Same cost as a real check, so the answer time does not reveal the length rule.
        bcrypt.checkpw(encoded[:BCRYPT_MAX_BYTES], hashed.encode())
        return False
    return bcrypt.checkpw(encoded, hashed.encode())


@lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> str:
    """A hash to verify against when the user does not exist (equal-time login)."""
    return _hash_sync(secrets.token_urlsafe(16), rounds)


async def hash_password(password: str, *, rounds: int) -> str:
    """bcrypt-hash a password in a worker thread (about 0.25 s at cost 12)."""
    return await anyio.to_thread.run_sync(_hash_sync, password, rounds)


async def verify_password(password: str, hashed: str | None, *, rounds: int) -> bool:
    """Check a password; with ``hashed=None`` (unknown user) do the same work and return False."""
    if hashed is None:
        await anyio.to_thread.run_sync(_verify_sync, password, _dummy_hash(rounds))
        return False
    try:
        return await anyio.to_thread.run_sync(_verify_sync, password, hashed)
    except ValueError:  # corrupt stored hash
        return False


@dataclass(frozen=True)
class IssuedToken:
    """A freshly signed access token and its claims."""

    token: str
    jti: str
    expires_at: datetime
    expires_in: int


@dataclass(frozen=True)
class TokenClaims:
    """The verified claims the gateway relies on."""

    user_id: int
    jti: str
    expires_at: datetime
    issued_at: datetime
    #: The user's ``token_version`` when the token was issued ("log out everywhere" bumps it).
    version: int = 0


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired or lacks a required claim."""


def create_access_token(*, user_id: int, secret: str, expires_minutes: int, version: int = 0) -> IssuedToken:
    """Sign an HS256 JWT with sub, iat, exp, jti, typ and ver (the user's token version)."""
    now = utcnow()
    expires_at = now + timedelta(minutes=expires_minutes)
    jti = uuid.uuid4().hex
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": expires_at,
        "jti": jti,
        "typ": TOKEN_TYPE,
        "ver": version,
    }
    token = jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)
    return IssuedToken(token=token, jti=jti, expires_at=expires_at, expires_in=expires_minutes * 60)


def decode_access_token(token: str, *, secret: str) -> TokenClaims:
    """Verify signature (HS256 only: never "none" or an algorithm the token picks) and claims."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "jti", "sub"]},
        )
        if claims.get("typ") != TOKEN_TYPE:
            raise InvalidToken("not an access token")
        return TokenClaims(
            user_id=_bounded_int(claims["sub"], "sub", low=1, high=MAX_ID, digits_only=True),
            jti=_short_str(claims["jti"], "jti"),
            expires_at=datetime.fromtimestamp(_bounded_int(claims["exp"], "exp", high=MAX_TIMESTAMP), tz=UTC),
            issued_at=datetime.fromtimestamp(_bounded_int(claims["iat"], "iat", high=MAX_TIMESTAMP), tz=UTC),
            version=_bounded_int(claims.get("ver", 0), "ver", high=MAX_ID),
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, OSError) as exc:
        raise InvalidToken(str(exc)) from exc


def _bounded_int(value: object, name: str, *, low: int = 0, high: int, digits_only: bool = False) -> int:
    """A claim as an int in [low, high]; anything else (bool, float, 10**20, "1e3") is refused."""
    if digits_only:
        if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > len(str(high)):
            raise InvalidToken(f"claim {name!r} must be a decimal string")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidToken(f"claim {name!r} out of range")
    return value


def _short_str(value: object, name: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_JTI_LENGTH:
        raise InvalidToken(f"claim {name!r} must be a short string")
    return value


@dataclass(frozen=True)
class NewApiKey:
    """A generated key: ``secret`` is shown to the user once, only ``key_hash`` is stored."""

    secret: str
    prefix: str
    key_hash: str


def hash_api_key(secret: str) -> str:
    """SHA-256 hex digest: enough for a 256-bit random secret (no need for a slow hash)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_api_key() -> NewApiKey:
    """A new random API key."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return NewApiKey(secret=secret, prefix=secret[:API_KEY_VISIBLE_CHARS], key_hash=hash_api_key(secret))


def looks_like_api_key(value: str) -> bool:
    """Cheap shape check before touching the database."""
    return value.startswith(API_KEY_PREFIX) and 20 <= len(value) <= 128
