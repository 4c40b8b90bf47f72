"""Register, log in, predict from every input (files, microphone, camera, fused) and see errors in place."""

import base64
import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, login
from tests.browser.media import file_payload, png, wav
from tests.browser.stub_services import peaked

CHART_DATASETS = "sel => window.Chart.getChart(document.querySelector(sel)).data.datasets.length"


def test_register_then_text_prediction_with_bars_model_and_latency(page, shot):
    page.goto("/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.locator("#register-username").fill("newcomer")
    page.locator("#register-email").fill("newcomer@example.com")
    page.locator("#register-password").fill(PASSWORD)
    shot(page, "01-register")
    page.get_by_role("button", name="Register").click()
    expect(page.locator("#who")).to_have_text("Signed in as newcomer")
    expect(page.locator("#auth-view")).to_be_hidden()
    assert "token" not in page.url and "eyJ" not in page.url

    page.get_by_label("Text", exact=True).fill("What a wonderful day, I love it")
    page.get_by_role("button", name="Predict text").click()
    result = page.locator("#result .result")
    expect(result.locator(".result-head .label")).to_have_text("happy")
    expect(result.locator('[data-modality="text"] .meta')).to_contain_text(re.compile(r"model stub-text test · \d+ ms"))
    expect(result.locator(".bar.best")).to_have_attribute("aria-label", "happy 70.0%")
    expect(page.locator("#text-status")).to_have_text("Done: happy.")
    expect(page.locator("#history-rows tr")).to_have_count(1)
    shot(page, "02-text-result")

    # The same name again: the error is next to the register button, in plain words.
    page.get_by_role("button", name="Log out", exact=True).click()
    page.locator("#register-username").fill("newcomer")
    page.locator("#register-email").fill("other@example.com")
    page.locator("#register-password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page.locator("#register-status")).to_have_text("That username or email is already registered.")


def test_errors_appear_next_to_the_control_that_caused_them(page, stack, shot):
    page.goto("/")
    page.get_by_label("Username or email").fill("nobody")
    page.locator("#login-password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-status")).to_have_text("Wrong username or password.")
    expect(page.locator("#login-status")).to_have_class(re.compile("error"))

    username, _ = stack.register()
    login(page, username)
    page.get_by_role("button", name="Predict text").click()  # empty text: caught in the page
    expect(page.locator("#text-status")).to_have_text("Type some text first.")
    page.get_by_role("button", name="Predict image").click()
    expect(page.locator("#image-status")).to_have_text("Choose, drop or take a picture first.")

    # Silent audio: the (stub) speech service answers 422 no_speech; the message sits by the speech card.
    page.locator("#audio-file").set_input_files(file_payload("silence.wav", "audio/wav", wav(amplitude=0)))
    page.get_by_role("button", name="Predict speech").click()
    expect(page.locator("#audio-status")).to_contain_text("No speech was found in the recording")
    expect(page.locator("#text-status")).to_have_text("")  # the earlier, stale message is gone
    expect(page.locator("#fused-status")).to_have_text("")  # and nothing went anywhere else
    expect(page.locator("#result-section")).to_be_hidden()  # no stale result next to the new input

    # Fused with that silent clip and some text: the speech card says "no speech", text carries the fusion.
    page.get_by_label("Text", exact=True).fill("I feel sad")
    page.get_by_role("button", name="Predict all given (fused)").click()
    expect(page.locator('#result [data-modality="speech"] .state')).to_have_text("No speech found in the recording.")
    expect(page.locator("#result .result")).to_contain_text("From: text")
    expect(page.locator("#result .result-head .label")).to_have_text("sad")
    page.get_by_label("Text", exact=True).fill("")

    # Not an image: the gateway refuses it by content (415).
    page.locator("#image-file").set_input_files(file_payload("notes.png", "image/png", b"just some text"))
    page.get_by_role("button", name="Predict image").click()
    expect(page.locator("#image-status")).to_have_text(re.compile("not supported|could not be read"))
    shot(page, "03-errors-in-place")


def test_rate_limit_message_says_when_to_retry_and_buttons_are_disabled_while_running(page, stack):
    username, _ = stack.register()
    login(page, username)
    release = []

    def slow_then_429(route) -> None:
        release.append(route)

    page.route("**/api/predict/text", slow_then_429)
    page.get_by_label("Text", exact=True).fill("hello")
    page.get_by_role("button", name="Predict text").click()
    expect(page.get_by_role("button", name="Predict text")).to_be_disabled()
    expect(page.get_by_role("button", name="Predict all given (fused)")).to_be_disabled()
    expect(page.locator("#text-status")).to_have_text("Analysing the text…")
    page.wait_for_timeout(50)
    release[0].fulfill(
        status=429,
        headers={"Retry-After": "42", "Content-Type": "application/json"},
        body='{"detail": "Rate limit exceeded: 60 per 1 minute", "code": "rate_limited"}',
    )
    expect(page.locator("#text-status")).to_have_text("Too many requests. Please try again in 42 seconds.")
    expect(page.get_by_role("button", name="Predict text")).to_be_enabled()


def test_image_upload_draws_the_face_box_and_label_and_no_face_is_clear(page, stack, shot):
    username, _ = stack.register()
    login(page, username)
    # Dropped onto the image card (the no-face image below is picked with the file input).
    dropped = page.evaluate_handle(
        """b64 => { const dt = new DataTransfer();
                    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                    dt.items.add(new File([bytes], 'face.png', { type: 'image/png' }));
                    return dt; }""",
        base64.b64encode(png(240, 180, grey=200)).decode(),
    )
    page.dispatch_event("#image-form", "drop", {"dataTransfer": dropped})
    expect(page.locator("#image-preview p")).to_contain_text("Dropped: face.png")
    expect(page.locator("#image-preview img")).to_be_visible()
    page.get_by_role("button", name="Predict image").click()
    canvas = page.locator('#result [data-modality="image"] canvas')
    expect(canvas).to_have_attribute("data-faces", "1")
    expect(page.locator(".face-list li")).to_have_text("happy (80.0%), box 120×90 at 60,45")
    # The stub's box is (60, 45, 120, 90): the left edge is drawn in the 'happy' colour, the inside is the photo.
    pixels = canvas.evaluate(
        """c => { const at = (x, y) => Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data);
                  return [at(60, 100), at(120, 100)]; }"""
    )
    assert pixels[0][:3] == [0xB2, 0x6A, 0x00], pixels
    assert pixels[1][:3] == [200, 200, 200], pixels
    shot(page, "04-image-face-box")

    page.locator("#image-file").set_input_files(file_payload("dark.png", "image/png", png(grey=0)))
    page.get_by_role("button", name="Predict image").click()
    expect(page.locator("#result .result-head .label")).to_have_text("no face found")
    expect(page.locator('#result [data-modality="image"] .state')).to_have_text("No face found in the image.")
    expect(page.locator('#result [data-modality="image"] canvas')).to_have_attribute("data-faces", "0")
    shot(page, "05-image-no-face")


def test_audio_upload_shows_the_speech_timeline(page, stack, shot):
    username, _ = stack.register()
    login(page, username)
    page.locator("#audio-file").set_input_files(file_payload("tone.wav", "audio/wav", wav(seconds=3.5)))
    expect(page.locator("#audio-preview audio")).to_be_attached()
    page.get_by_role("button", name="Predict speech").click()
    card = page.locator('#result [data-modality="speech"]')
    expect(card.locator("h4")).to_have_text(re.compile("Speech: (angry|neutral|sad)"))
    expect(card.locator(".timeline .chart-text")).to_contain_text("4 window(s). 0.0–1.0 s: angry")
    assert page.evaluate(CHART_DATASETS, '#result [data-modality="speech"] canvas') == 7
    shot(page, "06-speech-timeline")


def test_microphone_recording_is_sent_as_wav(page, stack, shot):
    username, _ = stack.register()
    login(page, username)
    expect(page.get_by_role("button", name="Stop recording")).to_be_hidden()
    page.get_by_role("button", name="Record from microphone").click()
    expect(page.get_by_role("button", name="Stop recording")).to_be_visible()
    expect(page.locator("#audio-status")).to_contain_text("Recording…")
    page.wait_for_timeout(1600)
    page.get_by_role("button", name="Stop recording").click()
    expect(page.locator("#audio-status")).to_contain_text("Recorded")
    expect(page.locator("#audio-preview p")).to_contain_text(re.compile(r"Recording, \d\.\d s"))
    with page.expect_request("**/api/predict/speech") as sent:
        page.get_by_role("button", name="Predict speech").click()
    body = sent.value.post_data_buffer
    wav_at = body.index(b"RIFF")
    assert body[wav_at + 8 : wav_at + 12] == b"WAVE"
    assert int.from_bytes(body[wav_at + 24 : wav_at + 28], "little") == 16000  # downsampled in the page
    assert b'filename="recording.wav"' in body
    # Chromium's fake microphone beeps: the stub hears sound and answers with a timeline.
    expect(page.locator('#result [data-modality="speech"] .timeline')).to_be_visible()
    shot(page, "07-microphone-result")


def test_webcam_snapshot_text_and_audio_give_a_fused_prediction(page, stack, shot):
    username, _ = stack.register()
    login(page, username)
    expect(page.get_by_role("button", name="Take snapshot")).to_be_hidden()
    page.get_by_role("button", name="Use camera").click()
    expect(page.locator("#camera-video")).to_be_visible()
    page.get_by_role("button", name="Take snapshot").click()
    expect(page.locator("#image-preview p")).to_contain_text("Camera snapshot")
    page.get_by_role("button", name="Close camera").click()
    expect(page.locator("#camera-video")).to_be_hidden()
    page.get_by_label("Text", exact=True).fill("I love this")
    page.locator("#audio-file").set_input_files(file_payload("tone.wav", "audio/wav", wav(seconds=2)))
    page.get_by_role("button", name="Predict all given (fused)").click()
    result = page.locator("#result .result")
    expect(result.locator(".kind")).to_have_text("Fused prediction")
    expect(result.locator("h3")).to_have_text(re.compile(r"Fused: \w+"))
    expect(result.locator(".modality")).to_have_count(3)
    expect(result).to_contain_text("From: image, speech, text")
    expect(result).to_contain_text("model stub-fusion test")
    expect(result.locator('[data-modality="image"] canvas')).to_be_visible()
    shot(page, "08-fused-result")


def _window(start, end, label, modalities):
    return {
        "start": start,
        "end": end,
        "label": label,
        "probabilities": peaked(label),
        "modalities": {name: {"label": value, "probabilities": peaked(value)} for name, value in modalities.items()},
    }


def test_video_timeline_and_transcript_are_drawn(page, stack, shot):
    """The page's rendering of the documented video answer (the gateway's reply is stood in for)."""
    if httpx.get(f"{stack.url}/openapi.json").json()["paths"].get("/api/predict/video") is None:
        pytest.skip("this gateway has no video input")
    username, _ = stack.register()
    login(page, username)
    answer = {
        "id": 7,
        "created_at": "2026-12-02T10:00:00Z",
        "kind": "video",
        "label": "happy",
        "probabilities": peaked("happy"),
        "modalities": {},
        "input": {},
        "latencies_ms": {"total": 812.0},
        "transcript": {"language": "en", "text": "what a day", "segments": [], "model": None},
        "timeline": {
            "window_s": 2.0,
            "frame_rate": 2.0,
            "windows": [
                _window(0.0, 2.0, "happy", {"image": "happy", "speech": "neutral"}),
                _window(2.0, 4.0, "sad", {"image": "sad"}),
            ],
            "missing": ["audio track"],
        },
    }
    page.route("**/api/predict/video", lambda route: route.fulfill(json=answer))
    expect(page.locator("#video-form")).to_be_visible()
    page.locator("#video-file").set_input_files(file_payload("clip.mp4", "video/mp4", b"\x00\x00\x00\x18ftypmp42"))
    page.get_by_role("button", name="Predict video").click()
    figure = page.locator("#result .timeline")
    expect(figure.locator("figcaption")).to_have_text("Video timeline")
    expect(figure.locator(".chart-text")).to_have_text(
        "2 window(s). 0.0–2.0 s: happy (image happy, speech neutral); 2.0–4.0 s: sad (image sad). Missing: audio track"
    )
    assert page.evaluate(CHART_DATASETS, "#result .timeline canvas") == 7
    expect(page.locator("#result .transcript")).to_contain_text("what a day")
    shot(page, "09-video-timeline")
