"""Pooled connections are recycled, so replicas added behind a Service get traffic."""

import asyncio

import httpx

from shared.http import RecyclingTransport, make_client


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
