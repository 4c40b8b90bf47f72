"""``emotion predict --video`` and ``emotion evaluate video``: the gateway's pipeline in process (fake services)."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import respx

from services.gateway.fanout import Fanout
from services.gateway.settings import Settings
from tests.gateway.conftest import ASR, FUSION, IMAGE, SPEECH, TEXT
from tests.gateway.factories import fake_fuse, fake_text_batch, prediction_body, probabilities, transcription_body
from tests.video.builder import build_video
from training import cli
from training.video import evaluate as video_evaluate


def image_batch(request: httpx.Request) -> httpx.Response:
    count = request.content.count(b'name="image"')
    results = [prediction_body("happy", model="image-model", faces=[], width=320, height=240)] * count
    return httpx.Response(200, json={"results": results})


@pytest.fixture
def fake_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """``local_services`` answers through fake services instead of loading five models."""
    segments = [{"start": 0.0, "end": 4.0, "label": "sad", "probabilities": probabilities("sad", 0.9)}]

    @asynccontextmanager
    async def fake_local_services(settings: Settings | None = None) -> AsyncIterator[Fanout]:
        with respx.mock(assert_all_called=False) as router:
            router.post(f"{SPEECH}/predict").respond(json=prediction_body("sad", duration_s=4.0, segments=segments))
            router.post(f"{ASR}/transcribe").respond(json=transcription_body((0.5, 1.9, "so sad")))
            router.post(f"{TEXT}/predict/batch").mock(side_effect=fake_text_batch)
            router.post(f"{IMAGE}/predict/batch").mock(side_effect=image_batch)
            router.post(f"{FUSION}/fuse").mock(side_effect=fake_fuse)
            urls = {"speech_url": SPEECH, "text_url": TEXT, "image_url": IMAGE, "fusion_url": FUSION, "asr_url": ASR}
            async with httpx.AsyncClient() as client:
                yield Fanout(client, Settings(_env_file=None, **urls))  # type: ignore[call-arg]

    monkeypatch.setattr(video_evaluate, "local_services", fake_local_services)


def test_predict_video_prints_the_timeline(fake_services, tmp_path: Path, capsys) -> None:
    video = tmp_path / "clip.webm"
    video.write_bytes(build_video("webm", seconds=4.0))
    out = tmp_path / "result.json"
    assert cli.main(["predict", "--video", str(video), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "clip.webm: 4.00 s, 40 frames; overall sad (fused over speech, text, image)" in printed
    assert "transcript: 'so sad'" in printed
    assert "  0.00-  2.00 s       sad       sad     happy       sad" in printed
    # The words end at 1.9 s: the second window has voice and face only.
    assert "  2.00-  4.00 s       sad         -     happy" in printed
    result = json.loads(out.read_text())
    assert [w["label"] for w in result["timeline"]["windows"]] == ["sad", "sad"]


def test_evaluate_video_scores_the_overall_label(fake_services, tmp_path: Path, capsys) -> None:
    for name in ("a.mp4", "b.mkv"):
        (tmp_path / name).write_bytes(build_video(name.split(".")[1], seconds=2.0))  # type: ignore[arg-type]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,emotion\na.mp4,sad\nb.mkv,happy\n")
    assert cli.main(["evaluate", "video", str(manifest)]) == 0
    printed = capsys.readouterr().out
    assert "a.mp4: sad (manifest: sad); speech=sad, text=sad, image=happy; transcript 'so sad'" in printed
    assert "accuracy=0.5000" in printed


def test_predict_video_refuses_a_missing_file(tmp_path: Path, capsys) -> None:
    assert cli.main(["predict", "--video", str(tmp_path / "nope.mp4")]) == 2
    assert "file not found" in capsys.readouterr().err
