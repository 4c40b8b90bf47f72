"""uvicorn HTTP protocols that stop waiting for slow clients (header and body read deadlines).

uvicorn closes idle keep-alive connections (``--timeout-keep-alive``) but has no timeout while
it reads a request: a client that sends half its headers, or a body one byte a minute, holds a
connection (and, for the body, a request task) forever. These subclasses add two deadlines:

- ``HEADER_READ_TIMEOUT_S`` (default 10): from a connection's start, or from the first byte of
  a next request on a kept-alive connection, until its headers are complete. Not reset by more
  bytes, so a trickle of header bytes does not keep the connection.
- ``BODY_READ_TIMEOUT_S`` (default 30): the longest pause between two chunks of a request body
  (an upload that keeps moving is never cut; one that stalls is). The app then sees
  ``http.disconnect`` and the connection is closed.

Time the app spends answering is not limited here (the services have their own per-call
timeouts). Use: ``uvicorn --http shared.server:HttpToolsProtocol`` (or ``:H11Protocol``). Behind
an ingress or a reverse proxy the proxy's own client timeouts apply first (nginx:
``client_header_timeout``, ``client_body_timeout``); these protect a service reached directly.
"""

import asyncio
import os
from typing import Any, Final

from uvicorn.protocols.http.h11_impl import H11Protocol as _H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol

DEFAULT_HEADER_READ_TIMEOUT_S: Final = 10.0
DEFAULT_BODY_READ_TIMEOUT_S: Final = 30.0


def _seconds(name: str, default: float) -> float:
    value = float(os.environ.get(name, default))
    if value <= 0:
        raise ValueError(f"{name} must be > 0")
    return value


class _ReadDeadlines:
    """Mixin over a uvicorn HTTP protocol: close the connection when a request is read too slowly."""

    # Attributes of the uvicorn protocol this is mixed into.
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def _init_deadlines(self) -> None:
        self.header_read_timeout_s = _seconds("HEADER_READ_TIMEOUT_S", DEFAULT_HEADER_READ_TIMEOUT_S)
        self.body_read_timeout_s = _seconds("BODY_READ_TIMEOUT_S", DEFAULT_BODY_READ_TIMEOUT_S)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = "headers"

    def _current_phase(self) -> str:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return "headers"
        return "body" if cycle.more_body else "app"

    def _arm(self, seconds: float) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _update_deadline(self, *, received: bool) -> None:
        if self.transport.is_closing():
            self._cancel_deadline()
            return
        phase = self._current_phase()
        changed = phase != self._phase
        self._phase = phase
        if phase == "body" and (changed or received):
            self._arm(self.body_read_timeout_s)  # an idle limit: every chunk restarts it
        elif phase == "headers" and received and (changed or self._deadline is None):
            self._arm(self.header_read_timeout_s)  # a deadline: more header bytes do not extend it
        elif changed:
            self._cancel_deadline()  # the app is answering, or the connection is idle (keep-alive rules)


class H11Protocol(_ReadDeadlines, _H11Protocol):
    """uvicorn's h11 protocol with header and body read deadlines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_deadlines()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_read_timeout_s)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._update_deadline(received=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update_deadline(received=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)


class HttpToolsProtocol(_ReadDeadlines, _HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body read deadlines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_deadlines()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_read_timeout_s)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._update_deadline(received=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update_deadline(received=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)
