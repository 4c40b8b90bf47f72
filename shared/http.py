"""The one way services make outgoing HTTP calls: a shared client that forwards the request id."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
from pydantic import SecretStr

from shared.observability import REQUEST_ID_HEADER, request_id_var
from shared.settings import INTERNAL_TOKEN_HEADER


async def _forward_request_id(request: httpx.Request) -> None:
    request_id = request_id_var.get()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


#: Default lifetime of a pooled keep-alive connection (see :class:`RecyclingTransport`).
MAX_CONNECTION_AGE_S = 10.0


class _TrackedStream(httpx.AsyncByteStream):
    """A response body that reports when it is closed (its connection is back in the pool)."""

    def __init__(self, stream: httpx.AsyncByteStream, done: Callable[[], None]) -> None:
        self._stream = stream
        self._done = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._done()


class RecyclingTransport(httpx.AsyncBaseTransport):
    """A connection pool that is replaced by a fresh one every ``max_age_s`` seconds.

    Keep-alive connections otherwise stay pinned to the replicas behind a Service (an L4
    balancer) that existed when they opened: under steady load they never idle out, so a
    replica added by scaling gets no traffic. Every ``max_age_s`` new requests go to a new
    pool (new connections, balanced again); the old pool finishes its in-flight requests and
    is closed. The pool keeps its speed: at most one reconnect per connection per period.
    """

    def __init__(self, factory: Callable[[], httpx.AsyncBaseTransport], *, max_age_s: float) -> None:
        self._factory = factory
        self._max_age_s = max_age_s
        self._current = factory()
        self._born = time.monotonic()
        self._in_flight: dict[httpx.AsyncBaseTransport, int] = {self._current: 0}
        self._retired: set[httpx.AsyncBaseTransport] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.generations = 1

    def _release(self, transport: httpx.AsyncBaseTransport) -> None:
        self._in_flight[transport] -= 1
        if transport in self._retired and self._in_flight[transport] == 0:
            self._retired.discard(transport)
            del self._in_flight[transport]
            task = asyncio.get_running_loop().create_task(transport.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if time.monotonic() - self._born >= self._max_age_s:
            old, self._current, self._born = self._current, self._factory(), time.monotonic()
            self._in_flight[self._current] = 0
            self.generations += 1
            self._retired.add(old)
            self._in_flight[old] += 1
            self._release(old)  # closes it now if idle
        transport = self._current
        self._in_flight[transport] += 1
        try:
            response = await transport.handle_async_request(request)
        except BaseException:
            self._release(transport)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_TrackedStream(response.stream, lambda: self._release(transport)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for transport in [*self._in_flight]:
            await transport.aclose()
        self._in_flight.clear()
        self._retired.clear()


def make_client(
    *,
    timeout: float,
    connect_timeout: float = 2.0,
    max_connections: int = 100,
    transport: httpx.AsyncBaseTransport | None = None,
    internal_token: SecretStr | str | None = None,
    max_connection_age_s: float | None = MAX_CONNECTION_AGE_S,
) -> httpx.AsyncClient:
    """An AsyncClient with explicit timeouts and request-id propagation; create once per app.

    With ``internal_token`` every call carries it in ``X-Internal-Token`` (service-to-service auth).
    Pooled connections are recycled every ``max_connection_age_s`` (None: never), so replicas
    added behind a Service receive work (see :class:`RecyclingTransport`).
    """
    token = internal_token.get_secret_value() if isinstance(internal_token, SecretStr) else internal_token
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2)
    if transport is None and max_connection_age_s is not None:
        transport = RecyclingTransport(lambda: httpx.AsyncHTTPTransport(limits=limits), max_age_s=max_connection_age_s)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=limits,
        event_hooks={"request": [_forward_request_id]},
        transport=transport,
        headers={INTERNAL_TOKEN_HEADER: token} if token else None,
    )
