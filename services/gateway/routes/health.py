"""Downstream health: the inference and fusion services' readiness, as the gateway sees it."""

import asyncio
from typing import Literal

import httpx
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from services.gateway.bodylimits import JsonLimitedRoute
from services.gateway.deps import SettingsDep
from shared.errors import error_responses
from shared.labels import Modality
from shared.service import redact_paths

MAX_DETAIL_CHARS = 300

#: Public (no credentials).
router = APIRouter(route_class=JsonLimitedRoute, tags=["health"])


class ServiceHealth(BaseModel):
    """A downstream service's readiness as seen from the gateway (no URLs or paths: this is public)."""

    status: Literal["ready", "not_ready", "unreachable"]
    detail: str | None = Field(default=None, max_length=MAX_DETAIL_CHARS)


class ServicesHealth(BaseModel):
    """Readiness of every downstream service."""

    services: dict[str, ServiceHealth]


@router.get(
    "/health/services",
    operation_id="services_health",
    summary="Readiness of the inference and fusion services",
    responses=error_responses(429),
)
async def services_health(request: Request, settings: SettingsDep) -> ServicesHealth:
    """Each service's /readyz, asked concurrently (the gateway's own /readyz covers only its DB)."""
    client: httpx.AsyncClient = request.app.state.http_client
    names = [*(str(m) for m in Modality), "fusion", "asr"]

    async def check(name: str) -> ServiceHealth:
        url = settings.service_url(name)
        try:
            response = await client.get(f"{url}/readyz", timeout=settings.health_timeout_s)
        except httpx.HTTPError as exc:
            return ServiceHealth(status="unreachable", detail=type(exc).__name__)
        if response.status_code == 200:
            return ServiceHealth(status="ready")
        try:
            detail = str(response.json().get("detail"))
        except (ValueError, AttributeError):
            detail = f"HTTP {response.status_code}"
        # A service's reason may name files of the server: never shown to the public.
        return ServiceHealth(status="not_ready", detail=redact_paths(detail)[:MAX_DETAIL_CHARS])

    results = await asyncio.gather(*(check(n) for n in names))
    return ServicesHealth(services=dict(zip(names, results, strict=True)))
