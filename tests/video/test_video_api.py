"""``POST /api/predict/video`` and ``?transcribe=true`` against fake services: timeline, partial failure, limits."""

import csv
import io
import json
import re

import httpx
import pytest
import respx

from shared.labels import LABELS
from tests.gateway.conftest import IMAGE
from tests.gateway.factories import auth_headers, prediction_body, probabilities, transcription_body, wav_bytes
from tests.video.builder import CONTAINERS, build_video


@pytest.fixture
async def headers(client):
    return await auth_headers(client)


def image_batch(label: str | None = "happy"):
    """A fake image service: one result per uploaded frame (label None = no face)."""

    def respond(request: httpx.Request) -> httpx.Response:
        count = request.content.count(b'name="image"')
        results = [prediction_body(label, model="image-model", faces=[], width=320, height=240) for _ in range(count)]
        return httpx.Response(200, json={"results": results})

    return respond


@pytest.fixture
def services(upstream: respx.MockRouter) -> respx.MockRouter:
    segments = [
        {"start": 0.0, "end": 2.0, "label": "sad", "probabilities": probabilities("sad")},
        {"start": 2.0, "end": 4.0, "label": "angry", "probabilities": probabilities("angry")},
    ]
    upstream.routes["speech"].respond(
        json=prediction_body("sad", model="speech-model", duration_s=4.0, segments=segments)
    )
    upstream.routes["asr"].respond(json=transcription_body((0.5, 1.8, "I am so sad"), (2.1, 3.9, "but this is great")))
    upstream.post(f"{IMAGE}/predict/batch", name="image_batch").mock(side_effect=image_batch())
    return upstream


def video_files(data: bytes, name: str = "clip.mp4") -> dict:
    return {"video": (name, data, "application/octet-stream")}


async def test_video_gives_a_fused_timeline_over_every_modality(client, services, headers):
    data = build_video("mp4", seconds=4.0)
    response = await client.post("/api/predict/video", files=video_files(data), headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "video"
    assert set(body["modalities"]) == {"speech", "text", "image"}
    assert all(m["status"] == "ok" for m in body["modalities"].values())
    timeline = body["timeline"]
    assert timeline["window_s"] == 2.0 and timeline["frame_rate"] == 2.0
    assert timeline["missing"] == []
    first, second = timeline["windows"]
    assert (first["start"], first["end"], second["end"]) == (0.0, 2.0, pytest.approx(4.0, abs=0.05))
    # Window 1: speech sad, text "sad" segment, face happy; window 2: speech angry, text happy, face happy.
    assert {m: w["label"] for m, w in first["modalities"].items()} == {"speech": "sad", "text": "sad", "image": "happy"}
    assert {m: w["label"] for m, w in second["modalities"].items()} == {
        "speech": "angry",
        "text": "happy",
        "image": "happy",
    }
    for window in timeline["windows"]:
        assert list(window["probabilities"]) == list(LABELS)
        assert sum(window["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert body["fused"]["modalities"] == ["speech", "text", "image"]
    assert body["label"] == body["fused"]["label"]
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    # The overall result is the duration-weighted mean of the windows.
    w1, w2 = (w["end"] - w["start"] for w in timeline["windows"])
    expected = {k: (w1 * first["probabilities"][k] + w2 * second["probabilities"][k]) / (w1 + w2) for k in LABELS}
    assert body["probabilities"] == pytest.approx(expected, abs=1e-4)
    assert body["transcript"]["text"] == "I am so sad but this is great"
    assert [s["label"] for s in body["transcript"]["segments"]] == ["sad", "happy"]
    assert body["input"]["video_duration_s"] == pytest.approx(4.0, abs=0.05)
    assert body["input"]["video_frame_count"] == 40
    assert body["input"]["video_bytes"] == len(data)
    assert body["input"]["transcript_length"] == len("I am so sad but this is great")
    assert body["modalities"]["image"]["details"] == {"frames": 8, "frames_with_face": 8}


async def test_the_services_get_flac_audio_and_jpeg_frames_with_detect_always(client, services, headers):
    response = await client.post("/api/predict/video", files=video_files(build_video("mkv")), headers=headers)
    assert response.status_code == 200, response.text
    speech = services["speech"].calls.last.request
    assert b"Content-Type: audio/flac" in speech.content and b"fLaC" in speech.content
    assert b"fLaC" in services["asr"].calls.last.request.content
    image = services["image_batch"].calls.last.request
    assert image.url.params["detect"] == "always"
    assert image.content.count(b"\xff\xd8\xff") == 8
    texts = json.loads(services["text_batch"].calls.last.request.content)["texts"]
    assert texts == ["I am so sad", "but this is great"]


async def test_history_keeps_the_timeline_labels_not_the_media(client, services, headers):
    created = (await client.post("/api/predict/video", files=video_files(build_video()), headers=headers)).json()
    stored = (await client.get(f"/api/predictions/{created['id']}", headers=headers)).json()
    assert stored["kind"] == "video"
    assert [w["label"] for w in stored["timeline"]["windows"]] == [w["label"] for w in created["timeline"]["windows"]]
    assert all(w["probabilities"] is None for w in stored["timeline"]["windows"])
    assert stored["transcript"]["text"] == created["transcript"]["text"]
    assert stored["input"]["video_frame_count"] == 40
    export = await client.get("/api/predictions/export.csv", headers=headers)
    (row,) = csv.DictReader(io.StringIO(export.text))
    assert row["kind"] == "video"
    assert row["transcript"] == "I am so sad but this is great"
    assert row["timeline_labels"] == ";".join(w["label"] for w in created["timeline"]["windows"])
    assert float(row["video_duration_s"]) == pytest.approx(4.0, abs=0.05)


@pytest.mark.parametrize("container", CONTAINERS)
async def test_every_container_is_accepted(client, services, headers, container):
    data = build_video(container, seconds=2.0)
    response = await client.post("/api/predict/video", files=video_files(data, "x.bin"), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["input"]["video_frame_count"] == 20


async def test_a_video_without_sound_answers_from_the_face_and_says_so(client, services, headers):
    data = build_video("webm", seconds=3.0, audio=None)
    response = await client.post("/api/predict/video", files=video_files(data), headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body["modalities"]) == ["image"]
    assert body["timeline"]["missing"] == ["audio track"]
    assert body["transcript"] is None
    assert body["label"] == "happy" and body["fused"]["modalities"] == ["image"]
    assert not services["speech"].called and not services["asr"].called


async def test_a_video_without_a_face_answers_from_the_voice_and_words(client, services, headers):
    services["image_batch"].mock(side_effect=image_batch(None))
    data = build_video("mov", seconds=4.0, faces=False)
    body = (await client.post("/api/predict/video", files=video_files(data), headers=headers)).json()
    assert body["modalities"]["image"]["status"] == "ok"
    assert body["modalities"]["image"]["message"] == "No face detected in any frame"
    assert body["modalities"]["image"]["probabilities"] is None
    assert body["timeline"]["missing"] == ["face (none in any sampled frame)"]
    assert body["fused"]["modalities"] == ["speech", "text"]
    assert all("image" not in w["modalities"] for w in body["timeline"]["windows"])


async def test_a_failed_transcription_is_the_text_slot_error_and_the_rest_is_fused(client, services, headers):
    services["asr"].mock(side_effect=httpx.ConnectError("refused"))
    body = (await client.post("/api/predict/video", files=video_files(build_video()), headers=headers)).json()
    text = body["modalities"]["text"]
    assert text["status"] == "error" and text["error"]["status"] == 503
    assert text["error"]["detail"].startswith("transcription failed: asr service is unreachable")
    assert body["fused"]["modalities"] == ["speech", "image"]
    assert body["transcript"] is None


async def test_every_service_failing_is_an_error(client, services, headers):
    for name in ("speech", "asr", "image_batch"):
        services[name].mock(side_effect=httpx.ConnectError("refused"))
    response = await client.post("/api/predict/video", files=video_files(build_video()), headers=headers)
    assert response.status_code == 503
    assert {e["modality"] for e in response.json()["errors"]} == {"speech", "text", "image"}


async def test_fusion_down_keeps_the_modalities_and_says_why(client, services, headers):
    services["fusion"].mock(side_effect=httpx.ConnectError("refused"))
    body = (await client.post("/api/predict/video", files=video_files(build_video()), headers=headers)).json()
    assert body["label"] is None and body["fused"] is None
    assert body["fusion_error"]["code"] == "upstream_unavailable"
    assert all(w["error"] == "upstream_unavailable" and w["label"] is None for w in body["timeline"]["windows"])
    assert body["modalities"]["speech"]["label"] == "sad"


async def test_frame_rate_and_window_are_configurable_and_bounded(app_client, services):
    async with app_client(video_max_windows=3, video_max_frames=5) as client:
        headers = await auth_headers(client)
        data = build_video("mkv", seconds=8.0)
        body = (await client.post("/api/predict/video?window_s=1", files=video_files(data), headers=headers)).json()
        assert len(body["timeline"]["windows"]) == 3
        assert body["timeline"]["window_s"] == pytest.approx(8.0 / 3, abs=0.01)
        assert body["modalities"]["image"]["details"]["frames"] == 5
        assert body["timeline"]["frame_rate"] == pytest.approx(5 / 8.0, abs=1e-3)
        slow = await client.post("/api/predict/video?frame_rate=0.5", files=video_files(data), headers=headers)
        assert slow.json()["modalities"]["image"]["details"]["frames"] == 4
        bad = await client.post("/api/predict/video?frame_rate=0", files=video_files(data), headers=headers)
        assert bad.status_code == 422


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(200), 415, "unsupported_media_type"),
        (b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(200), 415, "unsupported_media_type"),
        (wav_bytes(), 415, "unsupported_media_type"),
        (b"", 422, "invalid_input"),
    ],
)
async def test_other_files_are_refused_before_any_service_is_called(*, client, services, headers, data, status, code):
    response = await client.post("/api/predict/video", files=video_files(data), headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert not services["speech"].called and not services["image_batch"].called


async def test_a_corrupt_video_is_422(client, services, headers):
    data = build_video("mp4", seconds=2.0)
    response = await client.post("/api/predict/video", files=video_files(data[:64] + bytes(4096)), headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "corrupt_video"


async def test_too_long_and_too_large_are_413(app_client, services):
    async with app_client(max_video_duration_s=2.0, max_video_bytes=200_000) as client:
        headers = await auth_headers(client)
        long = await client.post("/api/predict/video", files=video_files(build_video(seconds=3.0)), headers=headers)
        assert long.status_code == 413 and long.json()["code"] == "video_too_long"
        assert re.search(r"3\.0 s; the limit is 2 s", long.json()["detail"])
        big = await client.post("/api/predict/video", files=video_files(bytes(200_001)), headers=headers)
        assert big.status_code == 413
        assert not services["speech"].called


async def test_video_needs_auth(client, services):
    response = await client.post("/api/predict/video", files=video_files(build_video()))
    assert response.status_code == 401


async def test_speech_with_transcribe_fuses_voice_and_words_and_shows_the_transcript(client, upstream, headers):
    upstream.routes["asr"].respond(json=transcription_body((0.0, 1.5, "=HYPERLINK(1) so sad today")))
    audio = wav_bytes(1.5)
    response = await client.post(
        "/api/predict/speech?transcribe=true", files={"audio": ("a.wav", audio, "audio/wav")}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "speech"
    assert body["transcript"]["text"] == "=HYPERLINK(1) so sad today"
    assert body["modalities"]["text"]["label"] == "sad"
    assert body["fused"]["modalities"] == ["speech", "text"]
    assert body["label"] == body["fused"]["label"]
    assert body["input"]["transcript_length"] == len("=HYPERLINK(1) so sad today")
    assert audio in upstream["asr"].calls.last.request.content
    export = await client.get("/api/predictions/export.csv", headers=headers)
    (row,) = csv.DictReader(io.StringIO(export.text))
    assert row["transcript"] == "'=HYPERLINK(1) so sad today"


async def test_speech_without_transcribe_calls_no_transcription(client, upstream, headers):
    files = {"audio": ("a.wav", wav_bytes(), "audio/wav")}
    body = (await client.post("/api/predict/speech", files=files, headers=headers)).json()
    assert body["transcript"] is None and list(body["modalities"]) == ["speech"]
    assert not upstream["asr"].called


async def test_multimodal_transcribes_only_when_no_text_is_given(client, upstream, headers):
    files = {"audio": ("a.wav", wav_bytes(), "audio/wav")}
    with_text = await client.post(
        "/api/predict/multimodal?transcribe=true", files=files, data={"text": "hello"}, headers=headers
    )
    assert with_text.json()["transcript"] is None and not upstream["asr"].called
    without = await client.post("/api/predict/multimodal?transcribe=true", files=files, headers=headers)
    body = without.json()
    assert body["transcript"]["text"] == "What a wonderful day"
    assert set(body["fused"]["modalities"]) == {"speech", "text"}


async def test_a_silent_transcript_leaves_text_without_a_guess(client, upstream, headers):
    upstream.routes["asr"].respond(
        json={"language": "en", "duration_s": 1.0, "text": "", "segments": [], "model": {"name": "a", "version": "1"}}
    )
    files = {"audio": ("a.wav", wav_bytes(), "audio/wav")}
    body = (await client.post("/api/predict/speech?transcribe=true", files=files, headers=headers)).json()
    assert body["modalities"]["text"]["status"] == "ok"
    assert body["modalities"]["text"]["probabilities"] is None
    assert body["modalities"]["text"]["message"] == "No speech transcribed"
    assert body["fused"]["modalities"] == ["speech"]
    assert body["transcript"]["text"] == ""
