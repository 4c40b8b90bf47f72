"""The encoder's checksum guard: weights that are not the pinned file give 503 with the reason, never a crash."""

import dataclasses
import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.speech import encoder
from services.speech.model import EncoderConfig
from services.speech.settings import Settings
from shared.weights import WHISPER_BASE
from tests.speech.conftest import _client, voice, wav_bytes
from training.speech.train_whisper import export


def tiny_head_folder(folder: Path) -> Path:
    """A model folder whose (untrained) Keras head reads the ``whisper`` input."""
    import keras

    inputs = keras.Input(shape=(1024,), name="whisper")
    network = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(inputs))
    export(network, folder, metrics={}, encoder=EncoderConfig(layers=(3,)), version="test")
    return folder


@pytest.fixture
async def corrupted_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The service with a Whisper part that was tampered with and an empty weights cache."""
    site = tmp_path / "site" / "tampered_whisper_part" / "data"
    site.mkdir(parents=True)
    (site.parent / "__init__.py").write_text("")
    (site / "model.bin.part1").write_bytes(b"not the whisper weights" * 100)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    tampered = dataclasses.replace(
        WHISPER_BASE, parts=("tampered_whisper_part:data/model.bin.part1", WHISPER_BASE.parts[1])
    )
    monkeypatch.setattr(encoder, "WHISPER_BASE", tampered)
    monkeypatch.setenv("EMOTION_WEIGHTS_CACHE", str(tmp_path / "cache"))
    settings = Settings(model_dir=tiny_head_folder(tmp_path / "model"), log_json=False)
    async for _, client in _client(settings):
        yield client


async def test_tampered_weights_are_refused_with_503(corrupted_client: httpx.AsyncClient) -> None:
    ready = await corrupted_client.get("/readyz")
    assert ready.status_code == 503
    assert "failed its checksum" in ready.json()["detail"]
    assert f"pinned {WHISPER_BASE.sha256[:12]}" in ready.json()["detail"]
    files = {"audio": ("a.wav", wav_bytes(voice(2.0)), "audio/wav")}
    response = await corrupted_client.post("/predict", files=files)
    assert response.status_code == 503
    assert response.json()["code"] == "model_not_ready"
    assert "failed its checksum" in response.json()["detail"]
    assert (await corrupted_client.get("/livez")).status_code == 200
