"""Bounds on JSON request bodies, checked before FastAPI parses and validates them.

A body is refused while it streams once it passes ``MAX_JSON_BYTES`` (413), and then, before
``json.loads`` or pydantic see it, if it nests deeper than ``MAX_JSON_DEPTH`` or holds more
than ``MAX_JSON_ITEMS`` values (422). So a body with hundreds of thousands of unexpected keys
costs one regex pass over at most a few dozen KB, never a per-key validation error list. The
gateway's JSON bodies are small (a text of MAX_TEXT_CHARS, a registration, a key name), so the
parse that follows stays well under a millisecond-scale budget on the event loop.

Installed as the routers' ``route_class`` (FastAPI's documented extension point) rather than as
outer middleware, so its errors go through the app's handlers and carry the request id and
security headers like every other error.
"""

import re
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import Scope

from shared.errors import InvalidInput, PayloadTooLarge

#: Strings (with escapes) are dropped before counting brackets and commas inside them.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_STRUCTURE = re.compile(rb"[\[\]{},]")
JSON_TOO_DEEP: Final = "JSON body nests deeper than {limit} levels"
JSON_TOO_MANY_ITEMS: Final = "JSON body has more than {limit} values"
JSON_TOO_LARGE: Final = "JSON body exceeds the {limit:,}-byte limit"


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return bool(media == b"application/json" or media.endswith(b"+json"))
    return False


def check_json_shape(body: bytes, *, max_depth: int, max_items: int) -> None:
    """Raise InvalidInput if ``body`` nests deeper than ``max_depth`` or has more than ``max_items`` values."""
    structure = _STRUCTURE.findall(_STRING.sub(b'""', body))
    # Every ',' separates two values (or members); each container holds at least one.
    items = 1 + sum(1 for token in structure if token == b",")
    if items > max_items:
        raise InvalidInput(JSON_TOO_MANY_ITEMS.format(limit=max_items))
    depth = 0
    for token in structure:
        if token in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise InvalidInput(JSON_TOO_DEEP.format(limit=max_depth))
        elif token in (b"]", b"}"):
            depth -= 1


async def read_json_body(request: Request, *, max_bytes: int, max_depth: int, max_items: int) -> None:
    """Read the body with a cap while it streams, check its shape, and keep it for FastAPI to parse."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(JSON_TOO_LARGE.format(limit=max_bytes))
        chunks.append(chunk)
    body = b"".join(chunks)
    check_json_shape(body, max_depth=max_depth, max_items=max_items)
    request._body = body  # Starlette's cache: FastAPI's own request.body() returns it


class JsonLimitedRoute(APIRoute):
    """An APIRoute whose JSON bodies are bounded (settings ``MAX_JSON_*``) before FastAPI parses them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def guarded(request: Request) -> Response:
            if _is_json(request.scope):
                settings = request.app.state.settings
                await read_json_body(
                    request,
                    max_bytes=settings.max_json_bytes,
                    max_depth=settings.max_json_depth,
                    max_items=settings.max_json_items,
                )
            return await handler(request)

        return guarded
