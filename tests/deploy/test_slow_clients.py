"""Slow clients (issue 11, item 8): shared.server's uvicorn protocols stop waiting for them.

A real uvicorn server on loopback, raw sockets: partial headers, trickled headers, a stalled
body are cut after their deadline; a slow but moving upload and a slow app are not.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from shared.server import H11Protocol, HttpToolsProtocol

TIMEOUT_S = 0.5
#: Generous: the machine is shared, so "closed" means "well before a stock server would".
SLACK_S = 1.5


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, answers its length; /slow takes longer than every read deadline."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(3 * TIMEOUT_S)
    body = str(size).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def serving(protocol: type | str) -> AsyncIterator[int]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=protocol, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def closed_after(reader: asyncio.StreamReader, limit_s: float) -> float | None:
    """Seconds until the server closes the connection (None if still open after ``limit_s``)."""
    started = time.perf_counter()
    try:
        while await asyncio.wait_for(reader.read(1024), timeout=limit_s):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.perf_counter() - started


PROTOCOLS = [pytest.param(H11Protocol, id="h11"), pytest.param(HttpToolsProtocol, id="httptools")]


@pytest.fixture(autouse=True)
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADER_READ_TIMEOUT_S", str(TIMEOUT_S))
    monkeypatch.setenv("BODY_READ_TIMEOUT_S", str(TIMEOUT_S))


Action = Callable[[asyncio.StreamWriter], object]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_partial_headers_are_cut(protocol):
    async with serving(protocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        assert await closed_after(reader, SLACK_S + TIMEOUT_S) is not None
        writer.close()


async def test_a_stock_uvicorn_waits_for_partial_headers():
    """The control: without the deadline the same connection is still open (what the report found)."""
    async with serving("h11") as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        assert await closed_after(reader, TIMEOUT_S * 3) is None
        writer.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_connection_that_sends_nothing_is_cut(protocol):
    async with serving(protocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await closed_after(reader, SLACK_S + TIMEOUT_S) is not None
        writer.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_trickled_header_bytes_do_not_extend_the_deadline(protocol):
    async with serving(protocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.perf_counter()
        request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
        try:
            for byte in request:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if reader.at_eof() or time.perf_counter() - started > 4 * TIMEOUT_S + SLACK_S:
                    break
        except ConnectionError:
            pass
        assert await closed_after(reader, SLACK_S) is not None
        assert time.perf_counter() - started < 4 * TIMEOUT_S + SLACK_S
        writer.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_stalled_body_is_cut(protocol):
    async with serving(protocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()
        assert await closed_after(reader, SLACK_S + TIMEOUT_S) is not None
        writer.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_slow_but_moving_upload_and_a_slow_app_are_served_on_one_connection(protocol):
    async with serving(protocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
        for _ in range(6):  # 6 x 0.3 s = longer than the body deadline, but never idle that long
            await asyncio.sleep(0.6 * TIMEOUT_S)
            writer.write(b"x")
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=SLACK_S)
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(1) == b"6"

        # Same connection: the app takes 3x the deadlines to answer; that is not the client's fault.
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=3 * TIMEOUT_S + SLACK_S)
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
