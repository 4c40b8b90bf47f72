"""``emotion predict --video`` / ``emotion evaluate video``: the gateway's own video pipeline, in process.

The five services (speech, text, image, fusion, asr) are built from their app factories and run
in this process behind an httpx transport that routes by host name, so a video goes through exactly
the code the deployed gateway runs (decode, sample, call, window, fuse), with no network and no
database.
"""

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import numpy as np
from fastapi import FastAPI

from services.gateway.fanout import Fanout
from services.gateway.recording import VideoOptions, analyse_video
from services.gateway.settings import Settings as GatewaySettings
from services.gateway.timeline import vector
from services.gateway.video import decode_video, sample_rate_for
from shared.errors import ModelNotReady
from training.manifest import Manifest

SERVICES = ("speech", "text", "image", "fusion", "asr")


def _factories() -> dict[str, Callable[[], FastAPI]]:
    from services.asr.app import create_app as asr_app
    from services.fusion.app import create_app as fusion_app
    from services.image.app import create_app as image_app
    from services.speech.app import create_app as speech_app
    from services.text.app import create_app as text_app

    return {"speech": speech_app, "text": text_app, "image": image_app, "fusion": fusion_app, "asr": asr_app}


class _ByHost(httpx.AsyncBaseTransport):
    """Send each request to the in-process app named by its host (``http://speech/...``)."""

    def __init__(self, apps: dict[str, FastAPI]) -> None:
        self.transports = {name: httpx.ASGITransport(app=app) for name, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)


@asynccontextmanager
async def local_services(settings: GatewaySettings | None = None) -> AsyncIterator[Fanout]:
    """Start the five services in this process (models loaded and warmed) and yield a Fanout to them."""
    base = settings or GatewaySettings()
    settings = base.model_copy(
        update={f"{name}_url": f"http://{name}" for name in SERVICES}
        | {f"{name}_timeout_s": 600.0 for name in SERVICES}
    )
    apps = {name: factory() for name, factory in _factories().items()}
    async with AsyncExitStack() as stack:
        for name, app in apps.items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            if not app.state.ready:
                raise ModelNotReady(f"{name} service is not ready: {app.state.not_ready_reason}")
        client = await stack.enter_async_context(httpx.AsyncClient(transport=_ByHost(apps)))
        yield Fanout(client, settings)


async def analyse_path(path: Path, fanout: Fanout) -> dict[str, Any]:
    """One video file through the pipeline: the JSON a gateway would answer (without id/created_at)."""
    settings = fanout.settings
    decoded = await anyio.to_thread.run_sync(
        functools.partial(
            decode_video,
            path.read_bytes(),
            max_duration_s=settings.max_video_duration_s,
            frame_rate=settings.video_frame_rate,
            max_frames=settings.video_max_frames,
        )
    )
    options = VideoOptions(
        frame_rate=sample_rate_for(
            decoded.duration_s, frame_rate=settings.video_frame_rate, max_frames=settings.video_max_frames
        ),
        window_s=settings.video_window_s,
        max_windows=settings.video_max_windows,
        image_batch_size=settings.video_image_batch,
        concurrency=settings.video_concurrency,
    )
    analysis = await analyse_video(fanout=fanout, video=decoded, options=options)
    modalities = {}
    for modality, outcome in analysis.outcomes.items():
        modalities[str(modality)] = {
            "status": "ok" if outcome.ok else "error",
            "label": str(outcome.label) if outcome.label else None,
            "message": outcome.message,
            "error": outcome.error.model_dump() if outcome.error else None,
        }
    fused = analysis.fused
    return {
        "file": path.name,
        "duration_s": round(decoded.duration_s, 3),
        "frame_count": decoded.frame_count,
        "label": str(fused.label) if fused else None,
        "probabilities": {str(k): v for k, v in fused.probabilities.items()} if fused else None,
        "fused_modalities": [str(m) for m in fused.modalities] if fused else [],
        "modalities": modalities,
        "transcript": analysis.transcript.text if analysis.transcript else None,
        "timeline": analysis.timeline.model_dump(mode="json"),
        "latencies_ms": analysis.latencies_ms,
    }


def format_timeline(result: dict[str, Any]) -> str:
    """A readable table: one line per window with each modality's label and the fused one."""
    lines = [
        f"{result['file']}: {result['duration_s']:.2f} s, {result['frame_count']} frames; "
        f"overall {result['label'] or '-'} (fused over {', '.join(result['fused_modalities']) or 'nothing'})",
        f"transcript: {result['transcript']!r}" if result["transcript"] is not None else "transcript: (no audio)",
    ]
    missing = result["timeline"]["missing"]
    if missing:
        lines.append("missing: " + "; ".join(missing))
    for name, slot in result["modalities"].items():
        if slot["status"] != "ok":
            lines.append(f"{name}: error {slot['error']['code']}: {slot['error']['detail']}")
    lines.append(f"{'window':>15}  {'speech':>8}  {'text':>8}  {'face':>8}  {'fused':>8}")
    for window in result["timeline"]["windows"]:
        labels = {m: (w or {}).get("label") or "-" for m, w in window["modalities"].items()}
        lines.append(
            f"{window['start']:6.2f}-{window['end']:6.2f} s  {labels.get('speech', '-'):>8}  "
            f"{labels.get('text', '-'):>8}  {labels.get('image', '-'):>8}  {window['label'] or '-':>8}"
        )
    return "\n".join(lines)


async def _predict_all(paths: Sequence[Path]) -> list[dict[str, Any]]:
    async with local_services() as fanout:
        return [await analyse_path(path, fanout) for path in paths]


def predict_one(value: str, **_: Any) -> dict[str, Any]:
    """The timeline of one video file."""
    (result,) = asyncio.run(_predict_all([Path(value)]))
    return result


def predict_manifest(manifest: Manifest, **_: Any) -> np.ndarray:
    """(n, 7) overall probabilities per video; a NaN row where nothing could be fused (counted wrong).

    Prints one line per video: its overall label, the manifest's, each modality's and the transcript.
    """
    results = asyncio.run(_predict_all(manifest.resolve("path")))
    for result, row in zip(results, manifest.rows, strict=True):
        per_modality = ", ".join(f"{m}={slot['label'] or '-'}" for m, slot in result["modalities"].items())
        print(
            f"{result['file']}: {result['label'] or 'no prediction'} (manifest: {row['emotion']}); "
            f"{per_modality}; transcript {result['transcript']!r}"
        )
    rows = [vector(r["probabilities"]) if r["probabilities"] else np.full(7, np.nan) for r in results]
    return np.stack(rows)
