"""Run a prediction request (fan-out, fusion), store it, and render stored rows."""

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from services.gateway.fanout import Fanout, Outcome, RequestSpec, all_failed
from services.gateway.models import Prediction
from services.gateway.recording import VideoAnalysis, transcribe_and_read
from services.gateway.schemas import (
    FusedResult,
    InputMetadata,
    ModalityError,
    ModalityResult,
    PredictionKind,
    PredictionOut,
    Timeline,
    TranscriptOut,
)
from services.gateway.video import DecodedVideo
from services.gateway.writer import PredictionWriter
from shared.labels import Emotion, Modality


@dataclass(frozen=True)
class PredictionInput:
    """What to send to which service, and what the gateway already knows about the inputs."""

    kind: PredictionKind
    specs: dict[Modality, RequestSpec]
    text_length: int | None = None
    audio_bytes: int | None = None
    image_bytes: int | None = None
    #: ``?transcribe=true``: the speech upload is also transcribed and its transcript is the text modality.
    transcribe: bool = False


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
    *, writer: PredictionWriter, fanout: Fanout, user_id: int, request: PredictionInput
) -> PredictionOut:
    """Call the services, fuse (multimodal), store the outcome and return it.

    Raises UpstreamFailure (4xx passed through, 502, 503) only when no modality succeeded.
    """
    start = time.perf_counter()
    transcript: TranscriptOut | None = None
    if request.transcribe and Modality.SPEECH in request.specs:
        outcomes, transcript = await _predict_transcribed(fanout, request.specs)
    else:
        outcomes = await fanout.predict(request.specs)
    fuses = request.kind == "multimodal" or transcript is not None
    if not any(outcome.ok for outcome in outcomes.values()):
        raise all_failed(outcomes)

    latencies: dict[str, float] = {str(m): o.latency_ms for m, o in outcomes.items()}
    fused: FusedResult | None = None
    fusion_error: ModalityError | None = None
    usable = {m: o.probabilities for m, o in outcomes.items() if o.ok and o.probabilities is not None}
    if fuses and usable:
        fusion = await fanout.fuse(usable)
        latencies["fusion"] = fusion.latency_ms
        fusion_error = fusion.error
        if fusion.result is not None:
            fused = FusedResult.model_validate(fusion.result.model_dump())
    latencies["total"] = round((time.perf_counter() - start) * 1000, 2)

    label: Emotion | None
    probabilities: dict[Emotion, float] | None
    if fuses:
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
        has_text=Modality.TEXT in outcomes,
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
        transcript=transcript.text if transcript is not None else None,
        transcript_length=len(transcript.text) if transcript is not None else None,
    )
    row = await writer.save(row)
    details = {m: o.extras for m, o in outcomes.items() if o.ok and o.extras}
    return to_out(row, details=details, transcript=transcript)


async def _predict_transcribed(
    fanout: Fanout, specs: dict[Modality, RequestSpec]
) -> tuple[dict[Modality, Outcome], TranscriptOut | None]:
    """The requested services, and concurrently the speech upload's transcript read by the text service."""
    files = specs[Modality.SPEECH].files or {}
    async with asyncio.TaskGroup() as group:
        plain = group.create_task(fanout.predict(specs))
        text = group.create_task(transcribe_and_read(fanout, audio=files["audio"]))
    outcomes = {**plain.result(), Modality.TEXT: text.result().outcome}
    return outcomes, text.result().transcript


def _timeline_summary(timeline: Timeline) -> dict[str, Any]:
    """What history keeps of a timeline: per-window labels, no probabilities."""
    return timeline.model_dump(
        mode="json",
        exclude={"windows": {"__all__": {"probabilities": True, "modalities": {"__all__": {"probabilities"}}}}},
    )


async def save_video(
    *, writer: PredictionWriter, user_id: int, video: DecodedVideo, analysis: VideoAnalysis, video_bytes: int
) -> PredictionOut:
    """Store a video prediction (timeline summary and metadata, never the media) and render it."""
    outcomes = analysis.outcomes
    results = {m: _result(o) for m, o in outcomes.items()}
    versions = {str(m): f"{o.model.name}@{o.model.version}" for m, o in outcomes.items() if o.model is not None}
    if analysis.transcript is not None and analysis.transcript.model is not None:
        versions["asr"] = f"{analysis.transcript.model.name}@{analysis.transcript.model.version}"
    fused = analysis.fused
    if fused is not None:
        versions["fusion"] = f"{fused.model.name}@{fused.model.version}"
    transcript = analysis.transcript
    row = Prediction(
        user_id=user_id,
        kind="video",
        has_speech=Modality.SPEECH in outcomes,
        has_text=Modality.TEXT in outcomes,
        has_image=Modality.IMAGE in outcomes,
        label=str(fused.label) if fused else None,
        probabilities=_json_probabilities(fused.probabilities if fused else None),
        modality_results={str(m): r.model_dump(mode="json", exclude_none=True) for m, r in results.items()},
        fused=fused.model_dump(mode="json") if fused else None,
        fusion_error=analysis.fusion_error.model_dump() if analysis.fusion_error else None,
        model_versions=versions,
        latencies_ms=analysis.latencies_ms,
        audio_duration_s=video.audio_duration_s,
        image_width=video.width,
        image_height=video.height,
        video_duration_s=round(video.duration_s, 3),
        video_frame_count=video.frame_count,
        video_bytes=video_bytes,
        transcript=transcript.text if transcript is not None else None,
        transcript_length=len(transcript.text) if transcript is not None else None,
        timeline=_timeline_summary(analysis.timeline),
    )
    row = await writer.save(row)
    details = {m: o.extras for m, o in outcomes.items() if o.ok and o.extras}
    return to_out(row, details=details, transcript=transcript, timeline=analysis.timeline)


def _json_probabilities(probabilities: dict[Emotion, float] | None) -> dict[str, float] | None:
    return {str(k): float(v) for k, v in probabilities.items()} if probabilities else None


def to_out(
    row: Prediction,
    *,
    details: dict[Modality, dict[str, Any]] | None = None,
    transcript: TranscriptOut | None = None,
    timeline: Timeline | None = None,
) -> PredictionOut:
    """Render a stored prediction (plus, right after the request, the services' extras and full timeline)."""
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
            video_duration_s=row.video_duration_s,
            video_frame_count=row.video_frame_count,
            video_bytes=row.video_bytes,
            transcript_length=row.transcript_length,
        ),
        latencies_ms=row.latencies_ms or {},
        transcript=transcript or (TranscriptOut(text=row.transcript) if row.transcript is not None else None),
        timeline=timeline or (Timeline.model_validate(row.timeline) if row.timeline else None),
    )
