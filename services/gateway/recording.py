"""A recording through the services: audio -> speech + transcript -> text, frames -> image, then one timeline.

Used by ``POST /predict/video`` and by ``?transcribe=true`` on the speech and multimodal routes.
Every call's failure is captured as that modality's :class:`ModalityError` (the rest still answer),
exactly as :mod:`services.gateway.fanout` does for the plain routes.
"""

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from services.gateway.fanout import Fanout, Outcome, RequestSpec, error_from_exception, error_from_response
from services.gateway.schemas import (
    FusedResult,
    ModalityError,
    Timeline,
    TimelineWindow,
    TranscriptOut,
    TranscriptSegmentOut,
    WindowModality,
)
from services.gateway.timeline import (
    Evidence,
    Vector,
    duration_weighted,
    make_windows,
    mean_of,
    per_window,
    to_probabilities,
    top_label,
    vector,
    window_length,
)
from services.gateway.video import DecodedVideo
from shared.labels import Emotion, Modality
from shared.schemas import ModelInfo, Probabilities, Transcription

logger = logging.getLogger(__name__)

ASR: Final = "asr"
NO_WORDS: Final = "No speech transcribed"
NO_FACE_IN_FRAMES: Final = "No face detected in any frame"
T = TypeVar("T")


class _Scored(BaseModel):
    """The part of a text/image service result the timeline needs."""

    label: Emotion | None
    probabilities: Probabilities | None
    model: ModelInfo


class _Batch(BaseModel):
    results: list[_Scored]


@dataclass(frozen=True)
class VideoOptions:
    """Sampling, windowing and batching of one video request (from the gateway settings or the query)."""

    frame_rate: float
    window_s: float
    max_windows: int
    image_batch_size: int = 16
    text_batch_size: int = 32
    #: Calls in flight at once to one service for one request (image batches, fusion windows).
    concurrency: int = 4


@dataclass
class TextResult:
    """The transcript and the text service's reading of it (either may have failed)."""

    outcome: Outcome
    transcript: TranscriptOut | None = None
    evidence: list[Evidence] = field(default_factory=list)


@dataclass
class VideoAnalysis:
    """Everything the video route stores and answers."""

    outcomes: dict[Modality, Outcome]
    timeline: Timeline
    transcript: TranscriptOut | None
    fused: FusedResult | None
    fusion_error: ModalityError | None
    latencies_ms: dict[str, float]


def _elapsed(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


async def _call(fanout: Fanout, service: str, path: str, parse: Callable[[Any], T], **kwargs: Any) -> T | ModalityError:
    """POST and parse, or the error that names ``service``."""
    url = fanout.settings.service_url(service)
    try:
        response = await fanout.post(service, path, **kwargs)
    except (httpx.HTTPError, TimeoutError) as exc:
        return error_from_exception(service, url, exc, fanout.settings.service_timeout(service))
    if response.status_code != 200:
        return error_from_response(service, response)
    try:
        return parse(response.json())
    except (ValueError, ValidationError):
        logger.error("response breaks the contract", extra={"service": service})
        return ModalityError(
            status=502, code="upstream_error", detail=f"{service} service returned an invalid response"
        )


async def _bounded(limit: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``jobs`` with at most ``limit`` in flight; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(run(job)) for job in jobs]
    return [task.result() for task in tasks]


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _first_error(results: Sequence[object]) -> ModalityError | None:
    return next((r for r in results if isinstance(r, ModalityError)), None)


async def transcribe_and_read(
    fanout: Fanout, *, audio: tuple[str, bytes, str], batch_size: int = 32, concurrency: int = 4
) -> TextResult:
    """Transcribe the audio, then classify every transcript segment with the text service.

    The text modality's overall is the segments' mean weighted by their duration. No words is
    not an error: the text slot is ok, without probabilities, with the message "No speech transcribed".
    """
    start = time.perf_counter()
    transcription = await _call(fanout, ASR, "/transcribe", Transcription.model_validate, files={"audio": audio})
    if isinstance(transcription, ModalityError):
        failed = transcription.model_copy(update={"detail": f"transcription failed: {transcription.detail}"})
        return TextResult(Outcome(Modality.TEXT, _elapsed(start), error=failed))
    segments = [s for s in transcription.segments if s.text.strip()]
    transcript = TranscriptOut(
        language=transcription.language,
        text=transcription.text,
        segments=[TranscriptSegmentOut(start=s.start, end=s.end, text=s.text) for s in segments],
        model=transcription.model,
    )
    if not segments:
        return TextResult(Outcome(Modality.TEXT, _elapsed(start), message=NO_WORDS), transcript=transcript)
    jobs = [
        lambda part=part: _call(
            fanout,
            Modality.TEXT,
            "/predict/batch",
            _Batch.model_validate,
            json={"texts": [s.text for s in part]},
        )
        for part in _chunks(segments, batch_size)
    ]
    batches = await _bounded(concurrency, jobs)
    if (error := _first_error(batches)) is not None:
        return TextResult(Outcome(Modality.TEXT, _elapsed(start), error=error), transcript=transcript)
    scored = [r for batch in batches if isinstance(batch, _Batch) for r in batch.results]
    evidence: list[Evidence] = []
    for out, result in zip(transcript.segments, scored, strict=True):
        if result.probabilities is None:
            continue
        out.label, out.probabilities = result.label, result.probabilities
        # A zero-length segment still counts, as a short span.
        evidence.append(Evidence(out.start, max(out.end, out.start + 0.01), vector(result.probabilities)))
    overall = mean_of(evidence)
    outcome = Outcome(
        Modality.TEXT,
        _elapsed(start),
        label=top_label(overall) if overall is not None else None,
        probabilities=to_probabilities(overall) if overall is not None else None,
        model=scored[0].model if scored else None,
        message=None if overall is not None else NO_WORDS,
    )
    return TextResult(outcome, transcript=transcript, evidence=evidence)


async def _speech(fanout: Fanout, audio: tuple[str, bytes, str]) -> tuple[Outcome, list[Evidence]]:
    outcome = await fanout.predict_one(Modality.SPEECH, RequestSpec(files={"audio": audio}))
    evidence: list[Evidence] = []
    for segment in outcome.extras.pop("segments", None) or []:
        try:
            evidence.append(Evidence(float(segment["start"]), float(segment["end"]), vector(segment["probabilities"])))
        except (KeyError, TypeError, ValueError):
            continue
    return outcome, evidence


async def _frames(fanout: Fanout, video: DecodedVideo, options: VideoOptions) -> tuple[Outcome, list[Evidence]]:
    start = time.perf_counter()
    jobs = [
        lambda part=part: _call(
            fanout,
            Modality.IMAGE,
            "/predict/batch",
            _Batch.model_validate,
            files=[("image", (f"frame-{f.time_s:.3f}.jpg", f.jpeg, "image/jpeg")) for f in part],
            params={"detect": "always"},
        )
        for part in _chunks(video.frames, options.image_batch_size)
    ]
    batches = await _bounded(options.concurrency, jobs)
    if (error := _first_error(batches)) is not None:
        return Outcome(Modality.IMAGE, _elapsed(start), error=error), []
    results = [r for batch in batches if isinstance(batch, _Batch) for r in batch.results]
    evidence = [
        Evidence(frame.time_s, frame.time_s, vector(result.probabilities))
        for frame, result in zip(video.frames, results, strict=True)
        if result.probabilities is not None
    ]
    overall = mean_of(evidence)
    outcome = Outcome(
        Modality.IMAGE,
        _elapsed(start),
        label=top_label(overall) if overall is not None else None,
        probabilities=to_probabilities(overall) if overall is not None else None,
        model=results[0].model if results else None,
        message=None if overall is not None else NO_FACE_IN_FRAMES,
        extras={"frames": len(video.frames), "frames_with_face": len(evidence)},
    )
    return outcome, evidence


async def _fuse_windows(
    fanout: Fanout, present: list[dict[Modality, Vector]], concurrency: int
) -> list[FusedResult | ModalityError | None]:
    async def fuse(window: dict[Modality, Vector]) -> FusedResult | ModalityError | None:
        if not window:
            return None
        outcome = await fanout.fuse({m: to_probabilities(v) for m, v in window.items()})
        if outcome.result is None:
            return outcome.error
        return FusedResult.model_validate(outcome.result.model_dump())

    return await _bounded(concurrency, [functools.partial(fuse, w) for w in present])


async def analyse_video(*, fanout: Fanout, video: DecodedVideo, options: VideoOptions) -> VideoAnalysis:
    """Call speech, asr -> text and image concurrently, then fuse every window and the whole.

    The overall result is the fused windows' mean weighted by their duration.
    """
    start = time.perf_counter()
    outcomes: dict[Modality, Outcome] = {}
    evidence: dict[Modality, list[Evidence]] = {}
    transcript: TranscriptOut | None = None
    missing = list(video.missing)
    async with asyncio.TaskGroup() as group:
        speech_task = text_task = image_task = None
        if video.audio_flac is not None:
            audio = ("audio.flac", video.audio_flac, "audio/flac")
            speech_task = group.create_task(_speech(fanout, audio))
            text_task = group.create_task(
                transcribe_and_read(
                    fanout, audio=audio, batch_size=options.text_batch_size, concurrency=options.concurrency
                )
            )
        if video.frames:
            image_task = group.create_task(_frames(fanout, video, options))
    if speech_task is not None:
        outcomes[Modality.SPEECH], evidence[Modality.SPEECH] = speech_task.result()
    if text_task is not None:
        text = text_task.result()
        outcomes[Modality.TEXT], evidence[Modality.TEXT], transcript = text.outcome, text.evidence, text.transcript
        if text.transcript is not None and not text.transcript.segments:
            missing.append("speech (no words transcribed)")
    if image_task is not None:
        outcomes[Modality.IMAGE], evidence[Modality.IMAGE] = image_task.result()
        if outcomes[Modality.IMAGE].ok and not evidence[Modality.IMAGE]:
            missing.append("face (none in any sampled frame)")
    latencies = {str(m): o.latency_ms for m, o in outcomes.items()}

    windows = make_windows(video.duration_s, window_s=options.window_s, max_windows=options.max_windows)
    present = per_window(windows, evidence)
    fusion_start = time.perf_counter()
    fused_windows = await _fuse_windows(fanout, present, options.concurrency)
    if any(present):
        latencies["fusion"] = _elapsed(fusion_start)

    timeline_windows: list[TimelineWindow] = []
    weighted: list[tuple[float, Vector]] = []
    fused_modalities: set[Modality] = set()
    fusion_model: ModelInfo | None = None
    fusion_error: ModalityError | None = None
    for window, modalities, fused in zip(windows, present, fused_windows, strict=True):
        item = TimelineWindow(
            start=window.start,
            end=window.end,
            modalities={
                m: WindowModality(label=top_label(v), probabilities=to_probabilities(v)) for m, v in modalities.items()
            },
        )
        if isinstance(fused, FusedResult):
            item.label, item.probabilities = fused.label, fused.probabilities
            weighted.append((window.duration, vector(fused.probabilities)))
            fused_modalities.update(fused.modalities)
            fusion_model = fused.model
        elif isinstance(fused, ModalityError):
            item.error = fused.code
            fusion_error = fusion_error or fused
        timeline_windows.append(item)
    overall = duration_weighted(weighted)
    fused_overall: FusedResult | None = None
    if overall is not None and fusion_model is not None:
        order = [m for m in (Modality.SPEECH, Modality.TEXT, Modality.IMAGE) if m in fused_modalities]
        fused_overall = FusedResult(
            label=top_label(overall), probabilities=to_probabilities(overall), modalities=order, model=fusion_model
        )
    latencies["total"] = _elapsed(start)
    timeline = Timeline(
        window_s=round(window_length(video.duration_s, window_s=options.window_s, max_windows=options.max_windows), 3),
        frame_rate=round(options.frame_rate, 4),
        windows=timeline_windows,
        missing=missing,
    )
    return VideoAnalysis(
        outcomes=outcomes,
        timeline=timeline,
        transcript=transcript,
        fused=fused_overall,
        fusion_error=fusion_error if fused_overall is None else None,
        latencies_ms=latencies,
    )
