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


def _parse(limit_value: str) -> list[Limit]:
    message = f"Rate limit exceeded: {limit_value}"
    return list(LimitGroup(limit_value, get_remote_address, None, False, None, message, None, 1, False))


class RateLimits:
    """The configured limits and the slowapi limiter that counts hits."""

    def __init__(self, settings: Settings) -> None:
        self.limiter = Limiter(
            key_func=get_remote_address,
            storage_uri=settings.rate_limit_storage_uri or "memory://",
            key_prefix=settings.rate_limit_key_prefix,
            enabled=settings.rate_limit_enabled,
            strategy="fixed-window",
        )
        self.prefix = settings.rate_limit_key_prefix
        self.user = _parse(settings.rate_limit_user)
        self.ip = _parse(settings.rate_limit_ip)
        self.auth = _parse(settings.rate_limit_auth)
        # Used only while the shared storage (Redis) is unreachable: limits stay enforced per process.
        self._fallback: RateLimiter = FixedWindowRateLimiter(MemoryStorage())

    def hit(self, limits: list[Limit], *, key: str, scope: str) -> None:
        """Count one request against ``limits``; raise RateLimitExceeded (429) when one is used up."""
        if not self.limiter.enabled:
            return
        for limit in limits:
            identifiers = (self.prefix, key, scope)
            backend = self._backend()
            try:
                allowed = backend.hit(limit.limit, *identifiers)
            except Exception:
                logger.warning("rate limit storage unreachable; counting in memory", exc_info=True)
                backend = self._fallback
                allowed = backend.hit(limit.limit, *identifiers)
            if not allowed:
                raise self._exceeded(limit, backend, identifiers)

    def _backend(self) -> RateLimiter:
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
