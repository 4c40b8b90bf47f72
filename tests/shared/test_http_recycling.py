"""Pooled connections are recycled and carry a bounded number of requests: replicas behind a Service share the load."""

import asyncio
import ssl

import httpcore
import httpx
import pytest
import uvicorn

from shared.http import CountedConnection, RecyclingTransport, make_client


class Pool(httpx.MockTransport):
    """A fake connection pool: answers with its own number, remembers being closed."""

    made = 0

    def __init__(self) -> None:
        Pool.made += 1
        self.number = Pool.made
        self.closed = False
        super().__init__(lambda _request: httpx.Response(200, text=str(self.number)))

    async def aclose(self) -> None:
        self.closed = True


async def test_new_requests_go_to_a_fresh_pool_after_max_age_and_the_old_one_closes() -> None:
    pools: list[Pool] = []

    def factory() -> Pool:
        pools.append(Pool())
        return pools[-1]

    transport = RecyclingTransport(factory, max_age_s=0.1)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        first = [(await client.get("/")).text for _ in range(3)]
        async with client.stream("GET", "/") as held:  # in flight across the recycle
            await asyncio.sleep(0.15)
            after = (await client.get("/")).text
            assert not pools[0].closed  # still serving the held response
            assert (await held.aread()).decode() == first[0]
        await asyncio.sleep(0)  # let the close task run
        assert pools[0].closed
        assert len(set(first)) == 1 and after != first[0]
        assert transport.generations == 2
    assert pools[1].closed  # the client's close closes the live pool


async def test_an_idle_old_pool_is_closed_at_once() -> None:
    pools: list[Pool] = []
    transport = RecyclingTransport(lambda: pools.append(Pool()) or pools[-1], max_age_s=0.05)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://svc/")
        await asyncio.sleep(0.06)
        await client.get("http://svc/")
        await asyncio.sleep(0)
        assert pools[0].closed and not pools[1].closed


def test_make_client_recycles_by_default_but_not_a_given_transport() -> None:
    assert isinstance(make_client(timeout=1.0)._transport, RecyclingTransport)
    mock = httpx.MockTransport(lambda _request: httpx.Response(204))
    assert make_client(timeout=1.0, transport=mock)._transport is mock
    assert not isinstance(make_client(timeout=1.0, max_connection_age_s=None)._transport, RecyclingTransport)


def test_renewed_pools_reuse_one_tls_context() -> None:
    # Building a context loads the CA bundle (tens of ms of CPU): a pool renewed every 10 s must not repeat it.
    transport = make_client(timeout=1.0)._transport
    assert isinstance(transport, RecyclingTransport)
    pools = [transport._current, transport._factory(), transport._factory()]
    contexts = {id(pool._pool._ssl_context) for pool in pools}  # type: ignore[attr-defined]
    assert len(contexts) == 1
    assert pools[0]._pool._ssl_context.verify_mode == ssl.CERT_REQUIRED  # type: ignore[attr-defined]  # still verifies


class FakeConnection(httpcore.AsyncConnectionInterface):
    """An always-ready HTTP/1.1 connection that answers 200 (or refuses once, as a busy one does)."""

    def __init__(self, refuse_first: bool = False) -> None:
        self.idle, self.closed, self.refuse = True, False, refuse_first

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:  # noqa: ARG002
        if self.refuse:
            self.refuse = False
            raise httpcore.ConnectionNotAvailable()
        return httpcore.Response(200)

    async def aclose(self) -> None:
        self.closed = True

    def can_handle_request(self, origin: httpcore.Origin) -> bool:  # noqa: ARG002
        return True

    def is_available(self) -> bool:
        return self.idle

    def has_expired(self) -> bool:
        return False

    def is_idle(self) -> bool:
        return self.idle

    def is_closed(self) -> bool:
        return self.closed

    def info(self) -> str:
        return "fake"


async def test_a_connection_takes_a_fixed_number_of_requests_then_expires_once_idle() -> None:
    inner = FakeConnection(refuse_first=True)
    connection = CountedConnection(inner, max_requests=3)
    request = httpcore.Request("GET", "http://svc/")
    with pytest.raises(httpcore.ConnectionNotAvailable):
        await connection.handle_async_request(request)  # refused: not counted, the pool retries elsewhere
    for _ in range(2):
        await connection.handle_async_request(request)
    assert connection.is_available() and not connection.has_expired()
    await connection.handle_async_request(request)
    assert connection.requests == 3
    assert not connection.is_available()  # no fourth request on it
    inner.idle = False
    assert not connection.has_expired()  # still answering its last one
    inner.idle = True
    assert connection.has_expired()  # the pool closes it; the next request opens a new connection


async def test_pooled_connections_carry_a_bounded_number_of_requests() -> None:
    served: list[int] = []

    async def app(scope, receive, send):  # a server that notes which connection each request came on
        if scope["type"] == "lifespan":
            return
        served.append(scope["client"][1])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with make_client(timeout=5.0, max_requests_per_connection=4) as client:
            for _ in range(12):
                assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200
        assert [served.count(p) for p in dict.fromkeys(served)] == [4, 4, 4]
    finally:
        server.should_exit = True
        await task
