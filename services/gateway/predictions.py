"""Run a prediction request (fan-out, fusion), store it, and render stored rows."""

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway import repository
from services.gateway.fanout import Fanout, Outcome, RequestSpec, all_failed
from services.gateway.models import Prediction
from services.gateway.schemas import (
    FusedResult,
    InputMetadata,
    ModalityError,
    ModalityResult,
    PredictionKind,
    PredictionOut,
)
from shared.labels import Emotion, Modality


@dataclass(frozen=True)
class PredictionInput:
    """What to send to which service, and what the gateway already knows about the inputs."""

    kind: PredictionKind
    specs: dict[Modality, RequestSpec]
    text_length: int | None = None
    audio_bytes: int | None = None
    image_bytes: int | None = None


def _result(outcome: Outcome) -> ModalityResult:
    if outcome.error is not None:
        return ModalityResult(status="error", latency_ms=outcome.latency_ms, error=outcome.error)
    return ModalityResult(
        status="ok",
        label=outcome.label,
        probabilities=outcome.probabilities,
        model=outcome.model,
        message=outcome.message,
        latency_ms=outcome.latency_ms,
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def run_prediction(
    *, session: AsyncSession, fanout: Fanout, user_id: int, request: PredictionInput
) -> PredictionOut:
    """Call the services, fuse (multimodal), store the outcome and return it.

    Raises UpstreamFailure (4xx passed through, 502, 503) only when no modality succeeded.
    """
    start = time.perf_counter()
    outcomes = await fanout.predict(request.specs)
    if not any(outcome.ok for outcome in outcomes.values()):
        raise all_failed(outcomes)

    latencies: dict[str, float] = {str(m): o.latency_ms for m, o in outcomes.items()}
    fused: FusedResult | None = None
    fusion_error: ModalityError | None = None
    usable = {m: o.probabilities for m, o in outcomes.items() if o.ok and o.probabilities is not None}
    if request.kind == "multimodal" and usable:
        fusion = await fanout.fuse(usable)
        latencies["fusion"] = fusion.latency_ms
        fusion_error = fusion.error
        if fusion.result is not None:
            fused = FusedResult.model_validate(fusion.result.model_dump())
    latencies["total"] = round((time.perf_counter() - start) * 1000, 2)

    label: Emotion | None
    probabilities: dict[Emotion, float] | None
    if request.kind == "multimodal":
        label, probabilities = (fused.label, fused.probabilities) if fused else (None, None)
    else:
        only = next(iter(outcomes.values()))
        label, probabilities = only.label, only.probabilities

    results = {m: _result(o) for m, o in outcomes.items()}
    versions = {str(m): f"{o.model.name}@{o.model.version}" for m, o in outcomes.items() if o.model is not None}
    if fused is not None:
        versions["fusion"] = f"{fused.model.name}@{fused.model.version}"
    speech = outcomes.get(Modality.SPEECH)
    image = outcomes.get(Modality.IMAGE)
    width = _number(image.extras.get("width")) if image else None
    height = _number(image.extras.get("height")) if image else None
    duration = _number(speech.extras.get("duration_s")) if speech else None
    row = Prediction(
        user_id=user_id,
        kind=request.kind,
        has_speech=Modality.SPEECH in request.specs,
        has_text=Modality.TEXT in request.specs,
        has_image=Modality.IMAGE in request.specs,
        label=str(label) if label else None,
        probabilities=_json_probabilities(probabilities),
        modality_results={str(m): r.model_dump(mode="json", exclude_none=True) for m, r in results.items()},
        fused=fused.model_dump(mode="json") if fused else None,
        fusion_error=fusion_error.model_dump() if fusion_error else None,
        model_versions=versions,
        latencies_ms=latencies,
        text_length=request.text_length,
        audio_duration_s=duration,
        audio_bytes=request.audio_bytes,
        image_width=int(width) if width is not None else None,
        image_height=int(height) if height is not None else None,
        image_bytes=request.image_bytes,
    )
    await repository.save_prediction(session=session, prediction=row)
    details = {m: o.extras for m, o in outcomes.items() if o.ok and o.extras}
    return to_out(row, details=details)


def _json_probabilities(probabilities: dict[Emotion, float] | None) -> dict[str, float] | None:
    return {str(k): float(v) for k, v in probabilities.items()} if probabilities else None


def to_out(row: Prediction, *, details: dict[Modality, dict[str, Any]] | None = None) -> PredictionOut:
    """Render a stored prediction (plus, right after the request, the services' extras)."""
    modalities: dict[Modality, ModalityResult] = {}
    for name, stored in (row.modality_results or {}).items():
        modality = Modality(name)
        result = ModalityResult.model_validate(stored)
        if details and modality in details:
            result.details = details[modality]
        modalities[modality] = result
    return PredictionOut(
        id=row.id,
        created_at=row.created_at,
        kind=row.kind,
        label=Emotion(row.label) if row.label else None,
        probabilities=row.probabilities,
        modalities=modalities,
        fused=FusedResult.model_validate(row.fused) if row.fused else None,
        fusion_error=ModalityError.model_validate(row.fusion_error) if row.fusion_error else None,
        input=InputMetadata(
            text_length=row.text_length,
            audio_duration_s=row.audio_duration_s,
            audio_bytes=row.audio_bytes,
            image_width=row.image_width,
            image_height=row.image_height,
            image_bytes=row.image_bytes,
        ),
        latencies_ms=row.latencies_ms or {},
    )
