"""The one way services make outgoing HTTP calls: a shared client that forwards the request id."""

import httpx
from pydantic import SecretStr

from shared.observability import REQUEST_ID_HEADER, request_id_var
from shared.settings import INTERNAL_TOKEN_HEADER


async def _forward_request_id(request: httpx.Request) -> None:
    request_id = request_id_var.get()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


def make_client(
    *,
    timeout: float,
    connect_timeout: float = 2.0,
    max_connections: int = 100,
    transport: httpx.AsyncBaseTransport | None = None,
    internal_token: SecretStr | str | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient with explicit timeouts and request-id propagation; create once per app.

    With ``internal_token`` every call carries it in ``X-Internal-Token`` (service-to-service auth).
    """
    token = internal_token.get_secret_value() if isinstance(internal_token, SecretStr) else internal_token
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2),
        event_hooks={"request": [_forward_request_id]},
        transport=transport,
        headers={INTERNAL_TOKEN_HEADER: token} if token else None,
    )
