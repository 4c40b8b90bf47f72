"""The speech service end to end with the shipped model: formats, errors, timeline, batch, readiness."""

import math

import httpx
import numpy as np
import pytest

from services.speech.errors import SILENT_DETAIL
from shared.labels import LABELS
from tests.speech.conftest import encode, stereo, voice, wav_bytes

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


def assert_distribution(probabilities: dict[str, float]) -> None:
    assert list(probabilities) == list(LABELS)
    assert all(0.0 <= p <= 1.0 for p in probabilities.values())
    assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-4)


async def post(client: httpx.AsyncClient, data: bytes, name: str = "clip.bin") -> httpx.Response:
    return await client.post("/predict", files={"audio": (name, data, "application/octet-stream")})


async def test_ready_with_the_shipped_model(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text


async def test_predict_wav_44k_stereo(client: httpx.AsyncClient) -> None:
    response = await post(client, encode(stereo(voice(3.0, 44100)), 44100, "WAV", "PCM_16"), "a.wav")
    assert response.status_code == 200, response.text
    body = response.json()
    assert_distribution(body["probabilities"])
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["model"]["name"] and body["model"]["version"]
    assert body["duration_s"] == pytest.approx(3.0, abs=0.01)
    assert len(body["segments"]) == 1
    (seg,) = body["segments"]
    assert 0.0 <= seg["start"] < seg["end"] <= 3.0
    assert_distribution(seg["probabilities"])
    # One window: the overall result is that window's.
    for label in LABELS:
        assert body["probabilities"][label] == pytest.approx(seg["probabilities"][label], abs=1e-6)


@pytest.mark.parametrize(("fmt", "subtype"), [("FLAC", "PCM_24"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
async def test_predict_each_accepted_format(client: httpx.AsyncClient, fmt: str, subtype: str) -> None:
    # The wrong file name on purpose: the type comes from the content.
    data = encode(voice(2.5, 22050, seed=3), 22050, fmt, subtype)
    response = await post(client, data, "upload.wav")
    assert response.status_code == 200, response.text
    assert_distribution(response.json()["probabilities"])
    assert response.json()["duration_s"] == pytest.approx(2.5, abs=0.1)


async def test_same_audio_in_another_container_gives_nearly_the_same_answer(client: httpx.AsyncClient) -> None:
    y = voice(3.0, 16000, seed=4)
    wav = (await post(client, wav_bytes(y))).json()["probabilities"]
    flac = (await post(client, encode(y, 16000, "FLAC", "PCM_16"))).json()["probabilities"]
    assert max(abs(wav[k] - flac[k]) for k in LABELS) < 1e-3


async def test_png_is_415(client: httpx.AsyncClient) -> None:
    response = await post(client, PNG, "face.png")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert "PNG image" in response.json()["detail"]


async def test_corrupt_audio_is_422(client: httpx.AsyncClient) -> None:
    response = await post(client, b"RIFF\x24\x00\x00\x00WAVEfmt garbage garbage", "bad.wav")
    assert response.status_code == 422
    assert response.json()["code"] == "corrupt_input"
    assert "corrupt" in response.json()["detail"]


async def test_empty_file_is_no_speech(client: httpx.AsyncClient) -> None:
    response = await post(client, b"", "empty.wav")
    assert response.status_code == 422
    assert response.json()["code"] == "no_speech"


async def test_silent_audio_is_no_speech(client: httpx.AsyncClient) -> None:
    response = await post(client, wav_bytes(np.zeros(3 * 16000, dtype=np.float32)), "silence.wav")
    assert response.status_code == 422
    body = response.json()
    assert body == {"detail": SILENT_DETAIL, "code": "no_speech", "request_id": body["request_id"]}


async def test_too_long_is_413(short_limit_client: httpx.AsyncClient) -> None:
    response = await post(short_limit_client, wav_bytes(voice(3.0)), "long.wav")
    assert response.status_code == 413
    assert response.json()["code"] == "audio_too_long"
    assert "limit is 2 s" in response.json()["detail"]


async def test_long_clip_timeline_skips_silence(client: httpx.AsyncClient) -> None:
    sr = 16000
    y = np.concatenate([voice(5.0, sr, seed=5), np.zeros(2 * sr, dtype=np.float32), voice(5.0, sr, f0=220, seed=6)])
    response = await post(client, wav_bytes(y), "long.wav")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["duration_s"] == pytest.approx(12.0, abs=0.01)
    segments = body["segments"]
    assert len(segments) >= 4
    for seg in segments:
        assert_distribution(seg["probabilities"])
        assert seg["label"] == max(seg["probabilities"], key=seg["probabilities"].get)
        assert not (seg["start"] < 6.9 and seg["end"] > 5.1)
    assert segments[0]["start"] < 0.1 and segments[-1]["end"] > 11.9
    # The overall result is the duration-weighted mean of the windows.
    weights = np.array([s["end"] - s["start"] for s in segments])
    for label in LABELS:
        expected = float(np.dot(weights, [s["probabilities"][label] for s in segments]) / weights.sum())
        assert body["probabilities"][label] == pytest.approx(expected, abs=1e-3)


async def test_batch_returns_one_result_per_file_in_order(client: httpx.AsyncClient) -> None:
    short, longer = wav_bytes(voice(2.0, seed=7)), wav_bytes(voice(4.0, seed=8))
    files = [("audio", ("a.wav", short, "audio/wav")), ("audio", ("b.wav", longer, "audio/wav"))]
    response = await client.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["duration_s"] for r in results] == [pytest.approx(2.0, abs=0.01), pytest.approx(4.0, abs=0.01)]
    single = (await post(client, short)).json()
    for label in LABELS:
        assert results[0]["probabilities"][label] == pytest.approx(single["probabilities"][label], abs=1e-5)


async def test_batch_too_many_files_is_422(client: httpx.AsyncClient) -> None:
    files = [("audio", (f"{i}.wav", wav_bytes(voice(1.0, seed=i)), "audio/wav")) for i in range(4)]
    response = await client.post("/predict/batch", files=files)
    assert response.status_code == 422
    assert response.json()["code"] == "batch_too_large"
    assert response.json()["detail"] == "Batch has 4 files; the limit is 3"


async def test_batch_names_the_bad_file(client: httpx.AsyncClient) -> None:
    files = [("audio", ("ok.wav", wav_bytes(voice(1.5)), "audio/wav")), ("audio", ("face.png", PNG, "image/png"))]
    response = await client.post("/predict/batch", files=files)
    assert response.status_code == 415
    assert response.json()["detail"].startswith("audio[1] (face.png):")


async def test_missing_audio_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict", files={"file": ("a.wav", wav_bytes(voice(1.0)), "audio/wav")})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"


async def test_model_missing_is_503(no_model_client: httpx.AsyncClient) -> None:
    ready = await no_model_client.get("/readyz")
    assert ready.status_code == 503
    assert "missing model file" in ready.json()["detail"]
    response = await post(no_model_client, wav_bytes(voice(2.0)), "a.wav")
    assert response.status_code == 503
    assert response.json()["code"] == "model_not_ready"
    assert (await no_model_client.get("/livez")).status_code == 200
