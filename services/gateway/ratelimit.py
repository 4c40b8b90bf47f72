"""Rate limits with slowapi: per client IP on every API route, per user/API key on protected
routes, and a stricter per-IP limit on login/register.

slowapi's ``Limiter`` holds the storage (memory://, or Redis via RATE_LIMIT_STORAGE_URI), the
strategy and the key prefix; its ``RateLimitExceeded`` is what a limit raises (rendered by the
shared handler as 429 with Retry-After). The checks run as FastAPI dependencies rather than
``@limiter.limit`` decorators so that the per-user key comes from the *verified* token or API
key (not from unverified claims) and every app instance gets its own configured limits.
"""

import logging
import math
import time
from typing import Any

import anyio.to_thread
from fastapi import Request
from limits import RateLimitItem
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, RateLimiter
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from slowapi.wrappers import Limit, LimitGroup

from services.gateway.settings import Settings

logger = logging.getLogger(__name__)

#: After a storage failure, count in memory this long before trying the storage again.
STORAGE_RETRY_S = 30.0


def _parse(limit_value: str) -> list[Limit]:
    message = f"Rate limit exceeded: {limit_value}"
    return list(LimitGroup(limit_value, get_remote_address, None, False, None, message, None, 1, False))


class RateLimits:
    """The configured limits and the slowapi limiter that counts hits."""

    def __init__(self, settings: Settings) -> None:
        storage_uri = settings.rate_limit_storage_uri or "memory://"
        self.shared_storage = not storage_uri.startswith("memory://")
        # Bound every Redis round-trip: a slow or dead Redis must not stall requests.
        options: dict[str, Any] = (
            {"socket_connect_timeout": 0.5, "socket_timeout": 0.5} if storage_uri.startswith("redis") else {}
        )
        self.limiter = Limiter(
            key_func=get_remote_address,
            storage_uri=storage_uri,
            storage_options=options,  # slowapi annotates dict[str, str]; redis wants numbers
            key_prefix=settings.rate_limit_key_prefix,
            enabled=settings.rate_limit_enabled,
            strategy="fixed-window",
        )
        self.prefix = settings.rate_limit_key_prefix
        self.user = _parse(settings.rate_limit_user)
        self.ip = _parse(settings.rate_limit_ip)
        self.auth = _parse(settings.rate_limit_auth)
        # Used while the shared storage (Redis) is unreachable: limits stay enforced per process.
        self._fallback: RateLimiter = FixedWindowRateLimiter(MemoryStorage())
        self._shared_down_until = 0.0

    async def hit(self, limits: list[Limit], *, key: str, scope: str) -> None:
        """Count one request against ``limits``; raise RateLimitExceeded (429) when one is used up."""
        if not self.limiter.enabled:
            return
        if self.shared_storage:
            # Network storage: its client is blocking, so keep it off the event loop.
            await anyio.to_thread.run_sync(self._hit, limits, key, scope)
        else:
            self._hit(limits, key, scope)

    def _hit(self, limits: list[Limit], key: str, scope: str) -> None:
        identifiers = (self.prefix, key, scope)
        for limit in limits:
            backend = self._backend()
            try:
                allowed = backend.hit(limit.limit, *identifiers)
            except Exception:
                logger.warning("rate limit storage unreachable; counting in memory for a while", exc_info=True)
                self._shared_down_until = time.monotonic() + STORAGE_RETRY_S
                backend = self._fallback
                allowed = backend.hit(limit.limit, *identifiers)
            if not allowed:
                raise self._exceeded(limit, backend, identifiers)

    def _backend(self) -> RateLimiter:
        if time.monotonic() < self._shared_down_until:
            return self._fallback
        return self.limiter.limiter

    @staticmethod
    def _exceeded(limit: Limit, backend: RateLimiter, identifiers: tuple[str, ...]) -> RateLimitExceeded:
        item: RateLimitItem = limit.limit
        try:
            reset_at = backend.get_window_stats(item, *identifiers).reset_time
        except Exception:
            reset_at = time.time() + item.get_expiry()
        retry_after = max(1, math.ceil(reset_at - time.time()))
        exc = RateLimitExceeded(limit)
        exc.headers = {"Retry-After": str(retry_after)}
        return exc


def client_ip(request: Request) -> str:
    """The client address (uvicorn's --proxy-headers makes it the real client behind a proxy)."""
    return get_remote_address(request)
