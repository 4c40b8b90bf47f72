"""Stand-ins for the text, speech, image and fusion services, run as one real HTTP process.

Answers follow the input (keywords, loudness, brightness), never a canned label, so the browser
tests see the gateway's real wire contract and different inputs give different results.
Run: ``uvicorn --factory tests.browser.stub_services:create_app``; mounted at /text, /speech, /image, /fusion.
"""

import io
import math
import wave
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image, ImageStat

EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
WORDS = {"happy": ("love", "great", "happy", "wonderful"), "sad": ("sad", "miss", "lost"), "angry": ("hate", "angry")}


def peaked(label: str, top: float = 0.7) -> dict[str, float]:
    """Probabilities with ``top`` on ``label`` and the rest spread evenly (sums to 1)."""
    rest = (1.0 - top) / (len(EMOTIONS) - 1)
    return {e: top if e == label else rest for e in EMOTIONS}


def model(name: str) -> dict[str, str]:
    return {"name": f"stub-{name}", "version": "test"}


def text_label(text: str) -> str:
    lowered = text.lower()
    return next((label for label, words in WORDS.items() if any(w in lowered for w in words)), "neutral")


def wav_windows(data: bytes) -> tuple[float, list[float]]:
    """Duration and the RMS of each 1 s window of a 16-bit PCM WAV."""
    with wave.open(io.BytesIO(data)) as audio:
        rate, channels, frames = audio.getframerate(), audio.getnchannels(), audio.readframes(audio.getnframes())
    samples = memoryview(frames).cast("h")[::channels]
    windows = []
    for start in range(0, len(samples), rate):
        chunk = samples[start : start + rate]
        windows.append(math.sqrt(sum(s * s for s in chunk) / max(1, len(chunk))) / 32768)
    return len(samples) / rate, windows


def create_app() -> FastAPI:
    """The four stub services on one app."""
    app = FastAPI()

    for name in ("text", "speech", "image", "fusion"):
        app.add_api_route(f"/{name}/readyz", lambda: {"status": "ready"}, methods=["GET"])

    @app.post("/text/predict")
    async def text(request: Request) -> dict[str, Any]:
        label = text_label((await request.json())["text"])
        return {"label": label, "probabilities": peaked(label), "model": model("text")}

    @app.post("/speech/predict", response_model=None)
    async def speech(audio: UploadFile = File()) -> dict[str, Any] | JSONResponse:
        duration, windows = wav_windows(await audio.read())
        if not windows or max(windows) < 1e-3:
            return JSONResponse({"detail": "No speech detected in the audio", "code": "no_speech"}, status_code=422)
        segments = []
        for i, rms in enumerate(windows):
            label = "angry" if rms > 0.2 else "sad" if i % 2 else "neutral"
            end = min(duration, i + 1.0)
            segments.append({"start": float(i), "end": round(end, 3), "label": label, "probabilities": peaked(label)})
        label = max(EMOTIONS, key=lambda e: sum(s["probabilities"][e] for s in segments))
        overall = {e: sum(s["probabilities"][e] for s in segments) / len(segments) for e in EMOTIONS}
        return {
            "label": label,
            "probabilities": overall,
            "model": model("speech"),
            "duration_s": round(duration, 3),
            "segments": segments,
        }

    @app.post("/image/predict")
    async def image(image: UploadFile = File()) -> dict[str, Any]:
        picture = Image.open(io.BytesIO(await image.read())).convert("L")
        width, height = picture.size
        brightness = ImageStat.Stat(picture).mean[0]
        body: dict[str, Any] = {"model": model("image"), "width": width, "height": height}
        if brightness < 10:  # a black picture has no face
            return {**body, "label": None, "probabilities": None, "faces": [], "message": "No face detected"}
        label = "happy" if brightness > 128 else "surprise"
        box = {"x": width // 4, "y": height // 4, "w": width // 2, "h": height // 2}
        face = {"box": box, "confidence": 0.97, "label": label, "probabilities": peaked(label, 0.8)}
        return {**body, "label": label, "probabilities": face["probabilities"], "faces": [face], "message": None}

    @app.post("/fusion/fuse")
    async def fuse(request: Request) -> dict[str, Any]:
        given = await request.json()
        average = {e: sum(p[e] for p in given.values()) / len(given) for e in EMOTIONS}
        label = max(EMOTIONS, key=lambda e: average[e])
        return {"label": label, "probabilities": average, "modalities": sorted(given), "model": model("fusion")}

    return app
