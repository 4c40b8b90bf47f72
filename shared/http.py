"""The one way services make outgoing HTTP calls: a shared client that forwards the request id."""

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable

import httpcore
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
#: Default number of requests a pooled connection carries before it is closed (see :class:`CountedConnection`).
MAX_REQUESTS_PER_CONNECTION = 16


class CountedConnection(httpcore.AsyncConnectionInterface):
    """A pooled connection that takes at most ``max_requests`` requests, then closes once idle.

    An L4 balancer (a Kubernetes Service, HAProxy in TCP mode) spreads connections, not
    requests. A keep-alive connection carries as many requests as its replica answers while it
    lives, so a faster replica, or the connection the pool happens to pick first, gets more
    than its share, for as long as the connection lives. With a fixed number of requests per
    connection, each replica gets the same number of requests per connection the balancer sends
    it, and the balancer spreads those evenly: the shares no longer depend on speed or on the
    pool's choice. One reconnect per ``max_requests`` requests is the cost.
    """

    def __init__(self, connection: httpcore.AsyncConnectionInterface, max_requests: int) -> None:
        self._connection = connection
        self._max_requests = max_requests
        self.requests = 0

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        self.requests += 1
        try:
            return await self._connection.handle_async_request(request)
        except httpcore.ConnectionNotAvailable:
            self.requests -= 1  # the pool retries it on another connection
            raise

    async def aclose(self) -> None:
        await self._connection.aclose()

    def info(self) -> str:
        return f"{self._connection.info()}, {self.requests}/{self._max_requests} requests"

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return self._connection.can_handle_request(origin)

    def is_available(self) -> bool:
        return self.requests < self._max_requests and self._connection.is_available()

    def has_expired(self) -> bool:
        used_up = self.requests >= self._max_requests and self._connection.is_idle()
        return used_up or self._connection.has_expired()

    def is_idle(self) -> bool:
        return self._connection.is_idle()

    def is_closed(self) -> bool:
        return self._connection.is_closed()


def bounded_transport(
    limits: httpx.Limits, *, max_requests: int | None, verify: ssl.SSLContext | None = None
) -> httpx.AsyncHTTPTransport:
    """httpx's pooled transport whose connections each carry at most ``max_requests`` requests (None: no bound).

    ``verify``: a TLS context to share; without one httpx builds its own, loading the CA bundle
    (tens of milliseconds of CPU), which a pool renewed every few seconds should not repeat.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits, verify=verify if verify is not None else True)
    if max_requests is not None:
        pool = transport._pool  # httpcore's pool creates every connection through create_connection()
        create = pool.create_connection

        def create_counted(origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
            return CountedConnection(create(origin), max_requests)

        pool.create_connection = create_counted  # type: ignore[method-assign]
    return transport


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
    max_requests_per_connection: int | None = MAX_REQUESTS_PER_CONNECTION,
) -> httpx.AsyncClient:
    """An AsyncClient with explicit timeouts and request-id propagation; create once per app.

    With ``internal_token`` every call carries it in ``X-Internal-Token`` (service-to-service auth).
    Replicas behind a Service (an L4 balancer) share the load evenly, new ones included: each
    pooled connection carries at most ``max_requests_per_connection`` requests (see
    :class:`CountedConnection`), and the pool is replaced every ``max_connection_age_s``, so a
    lightly used connection does not stay on one replica either (see :class:`RecyclingTransport`).
    None turns either off.
    """
    token = internal_token.get_secret_value() if isinstance(internal_token, SecretStr) else internal_token
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2)
    if transport is None:
        tls = httpx.create_ssl_context()  # what httpx would otherwise build again for every new pool

        def pool() -> httpx.AsyncHTTPTransport:
            return bounded_transport(limits, max_requests=max_requests_per_connection, verify=tls)

        transport = pool() if max_connection_age_s is None else RecyclingTransport(pool, max_age_s=max_connection_age_s)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=limits,
        event_hooks={"request": [_forward_request_id]},
        transport=transport,
        headers={INTERNAL_TOKEN_HEADER: token} if token else None,
    )
