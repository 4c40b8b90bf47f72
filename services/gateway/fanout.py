"""Concurrent calls to the inference services, then to fusion, with per-modality error capture.

Every failure of one call (connection refused, timeout, 5xx, 4xx for the user's input, a body
that breaks the wire contract) becomes a :class:`ModalityError` naming the modality, so one
slow or broken service never sinks the others' results.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from pydantic import BaseModel, ValidationError

from services.gateway.errors import UpstreamFailure
from services.gateway.schemas import ModalityError
from services.gateway.settings import Settings
from shared.labels import Emotion, Modality
from shared.schemas import FuseRequest, FuseResponse, ModelInfo, Probabilities

logger = logging.getLogger(__name__)

#: Upstream statuses that mean "your input is wrong": passed through to the client.
CLIENT_ERROR_STATUSES: Final = frozenset({400, 413, 415, 422})
FUSION: Final = "fusion"


class _PredictionBody(BaseModel):
    """What the gateway needs from a text/speech/image response (extras are kept aside)."""

    label: Emotion | None
    probabilities: Probabilities | None
    model: ModelInfo
    message: str | None = None


@dataclass
class RequestSpec:
    """One call to an inference service's POST /predict."""

    json: dict[str, Any] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    params: dict[str, str] | None = None


@dataclass
class Outcome:
    """One modality's call: the parsed result or the error, and how long it took."""

    modality: Modality
    latency_ms: float
    label: Emotion | None = None
    probabilities: dict[Emotion, float] | None = None
    model: ModelInfo | None = None
    message: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    error: ModalityError | None = None

    @property
    def ok(self) -> bool:
        """The service answered with a valid result (which may still lack probabilities: no face)."""
        return self.error is None


@dataclass
class FusionOutcome:
    """The fusion call's result or error."""

    latency_ms: float
    result: FuseResponse | None = None
    error: ModalityError | None = None


def _upstream_detail(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200]
    if isinstance(body, dict):
        code = body.get("code")
        return (str(code) if code else None), str(body.get("detail", ""))[:500]
    return None, str(body)[:200]


def error_from_response(service: str, response: httpx.Response) -> ModalityError:
    """Map a non-2xx upstream answer to the error reported for that service."""
    code, detail = _upstream_detail(response)
    status = response.status_code
    if status in CLIENT_ERROR_STATUSES:
        return ModalityError(status=status, code=code or "invalid_input", detail=detail or f"{service} rejected input")
    if status == 503:
        return ModalityError(
            status=503, code=code or "model_not_ready", detail=f"{service} service is not ready: {detail}"
        )
    return ModalityError(status=502, code="upstream_error", detail=f"{service} service failed ({status}): {detail}")


def error_from_exception(service: str, url: str, exc: BaseException, timeout_s: float) -> ModalityError:
    """Map a transport failure to the error reported for that service."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return ModalityError(
            status=504, code="upstream_timeout", detail=f"{service} service did not answer within {timeout_s:g} s"
        )
    if isinstance(exc, httpx.ConnectError):
        return ModalityError(
            status=503, code="upstream_unavailable", detail=f"{service} service is unreachable at {url}"
        )
    return ModalityError(
        status=502, code="upstream_error", detail=f"{service} service call failed: {type(exc).__name__}"
    )


class Fanout:
    """Calls the inference and fusion services through the app's shared httpx client."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def _post(self, service: str, path: str, **kwargs: Any) -> httpx.Response:
        timeout_s = self.settings.service_timeout(service)
        timeout = httpx.Timeout(timeout_s, connect=min(self.settings.connect_timeout_s, timeout_s))
        # httpx timeouts bound each network step; asyncio.timeout bounds the whole call.
        async with asyncio.timeout(timeout_s):
            return await self.client.post(self.settings.service_url(service) + path, timeout=timeout, **kwargs)

    async def post(self, service: str, path: str, **kwargs: Any) -> httpx.Response:
        """POST to any downstream service (e.g. asr /transcribe) with its URL and timeouts; raises on errors."""
        return await self._post(service, path, **kwargs)

    async def predict_one(self, modality: Modality, spec: RequestSpec) -> Outcome:
        """POST /predict on one inference service; never raises for upstream failures."""
        start = time.perf_counter()
        url = self.settings.service_url(modality)

        def elapsed() -> float:
            return round((time.perf_counter() - start) * 1000, 2)

        try:
            response = await self._post(modality, "/predict", json=spec.json, files=spec.files, params=spec.params)
        except (httpx.HTTPError, TimeoutError) as exc:
            error = error_from_exception(modality, url, exc, self.settings.service_timeout(modality))
            logger.warning("modality call failed", extra={"modality": str(modality), "error": error.detail})
            return Outcome(modality, elapsed(), error=error)
        if response.status_code != 200:
            error = error_from_response(modality, response)
            logger.warning("modality call refused", extra={"modality": str(modality), "status": response.status_code})
            return Outcome(modality, elapsed(), error=error)
        try:
            body = response.json()
            parsed = _PredictionBody.model_validate(body)
        except (ValueError, ValidationError) as exc:
            logger.error("modality response breaks the contract", extra={"modality": str(modality), "error": str(exc)})
            error = ModalityError(
                status=502, code="upstream_error", detail=f"{modality} service returned an invalid response"
            )
            return Outcome(modality, elapsed(), error=error)
        extras = {k: v for k, v in body.items() if k not in {"label", "probabilities", "model", "message"}}
        return Outcome(
            modality,
            elapsed(),
            label=parsed.label,
            probabilities=parsed.probabilities,
            model=parsed.model,
            message=parsed.message,
            extras=extras,
        )

    async def predict(self, specs: dict[Modality, RequestSpec]) -> dict[Modality, Outcome]:
        """Call every requested service concurrently; each outcome carries its own error."""
        async with asyncio.TaskGroup() as group:
            tasks = {modality: group.create_task(self.predict_one(modality, spec)) for modality, spec in specs.items()}
        return {modality: task.result() for modality, task in tasks.items()}

    async def fuse(self, probabilities: dict[Modality, dict[Emotion, float]]) -> FusionOutcome:
        """POST /fuse with the modalities that produced probabilities."""
        start = time.perf_counter()
        url = self.settings.service_url(FUSION)
        request = FuseRequest.model_validate({str(m): p for m, p in probabilities.items()})
        try:
            response = await self._post(FUSION, "/fuse", json=request.model_dump(mode="json", exclude_none=True))
        except (httpx.HTTPError, TimeoutError) as exc:
            error = error_from_exception(FUSION, url, exc, self.settings.service_timeout(FUSION))
            return FusionOutcome(round((time.perf_counter() - start) * 1000, 2), error=error)
        latency = round((time.perf_counter() - start) * 1000, 2)
        if response.status_code != 200:
            return FusionOutcome(latency, error=error_from_response(FUSION, response))
        try:
            return FusionOutcome(latency, result=FuseResponse.model_validate(response.json()))
        except (ValueError, ValidationError):
            return FusionOutcome(
                latency,
                error=ModalityError(
                    status=502, code="upstream_error", detail="fusion service returned an invalid response"
                ),
            )


def all_failed(outcomes: dict[Modality, Outcome]) -> UpstreamFailure:
    """The error when no modality succeeded.

    All failures are the user's input (4xx) -> that 4xx; otherwise 503 if every service failure
    means "not ready / unreachable", else 502.
    """
    errors = [(m, o.error) for m, o in outcomes.items() if o.error is not None]
    listed = [{"modality": str(m), **e.model_dump()} for m, e in errors]
    if len(errors) == 1:
        detail = errors[0][1].detail
    else:
        detail = "; ".join(f"{m}: {e.detail}" for m, e in errors)
    client_errors = [e for _, e in errors if 400 <= e.status < 500]
    if errors and len(client_errors) == len(errors):
        first = client_errors[0]
        return UpstreamFailure(detail, status_code=first.status, code=first.code, errors=listed)
    service_errors = [e for _, e in errors if e.status >= 500]
    if service_errors and all(e.status == 503 for e in service_errors):
        return UpstreamFailure(detail, status_code=503, code="upstream_not_ready", errors=listed)
    return UpstreamFailure(detail, status_code=502, code="upstream_error", errors=listed)
