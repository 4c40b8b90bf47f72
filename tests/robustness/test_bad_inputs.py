"""The bad-input corpus against the speech and image services running as real processes:
every case is refused (4xx) in the error shape, single and in a batch, and the service stays ready.
"""

import httpx
import pytest

from tests.robustness.conftest import HEADERS, Process, assert_error_shape, assert_ready
from tests.robustness.corpus import Case, audio_cases, good_audio, good_images, image_cases

pytestmark = pytest.mark.e2e

TIMEOUT = httpx.Timeout(120.0)


@pytest.fixture(scope="module")
def http() -> httpx.Client:
    with httpx.Client(timeout=TIMEOUT, headers=HEADERS) as client:
        yield client


@pytest.mark.parametrize("case", audio_cases(), ids=repr)
def test_speech_refuses_bad_audio(http: httpx.Client, speech: Process, case: Case) -> None:
    response = http.post(f"{speech.url}/predict", files={"audio": ("clip.bin", case.data, "audio/wav")})
    assert_error_shape(response, case.expected)
    assert_ready(http, speech.url)


@pytest.mark.parametrize("case", image_cases(), ids=repr)
def test_image_refuses_bad_images(http: httpx.Client, image: Process, case: Case) -> None:
    response = http.post(f"{image.url}/predict", files={"image": ("face.bin", case.data, "image/png")})
    assert_error_shape(response, case.expected)
    assert_ready(http, image.url)


def test_speech_batch_names_the_bad_file_and_keeps_serving(http: httpx.Client, speech: Process) -> None:
    cases = {c.name: c for c in audio_cases()}
    bad = [cases[n] for n in ("flac_truncated_header", "wav_64_channels", "vorbis_bomb_32ch_599s", "opus_claims_2h")]
    for case in bad:
        good = ("audio", ("ok.wav", good_audio()["wav"], "audio/wav"))
        files = [good, ("audio", ("bad.bin", case.data, "audio/ogg"))]
        response = http.post(f"{speech.url}/predict/batch", files=files)
        assert_error_shape(response, case.expected)
        assert "1" in response.json()["detail"], response.json()  # the failing item is named by its index
    assert_ready(http, speech.url)


def test_image_batch_names_the_bad_file_and_keeps_serving(http: httpx.Client, image: Process) -> None:
    cases = {c.name: c for c in image_cases()}
    for name in ("png_truncated", "jpeg_claims_65000_square", "png_16bit_rgba_6300", "text"):
        case = cases[name]
        files = [("image", ("ok.png", good_images()["png"], "image/png")), ("image", ("bad.bin", case.data, "x/y"))]
        response = http.post(f"{image.url}/predict/batch", files=files)
        assert_error_shape(response, case.expected)
        assert "1" in response.json()["detail"], response.json()
    assert_ready(http, image.url)


def test_good_files_still_work_after_the_corpus(http: httpx.Client, speech: Process, image: Process) -> None:
    """The refusals above left nothing broken: valid files of every format are still answered."""
    for name, data in good_images().items():
        response = http.post(f"{image.url}/predict?detect=never", files={"image": (name, data, "image/png")})
        assert response.status_code == 200, (name, response.text)
        assert abs(sum(response.json()["probabilities"].values()) - 1) < 1e-3
    for name, data in good_audio().items():
        response = http.post(f"{speech.url}/predict", files={"audio": (name, data, "audio/wav")})
        # A synthetic tone may be judged "no speech" (422); what matters is that it is decoded, not refused.
        assert response.status_code in {200, 422}, (name, response.text)
        if response.status_code == 422:
            assert response.json()["code"] == "no_speech", (name, response.text)


GATEWAY_AUDIO = ("empty", "wav_64_channels", "flac_claims_20h", "vorbis_bomb_32ch_599s", "mp3_magic_then_garbage")
GATEWAY_IMAGES = ("empty", "png_truncated", "jpeg_claims_65000_square", "png_16bit_rgba_6300", "webp_corrupt_body")


@pytest.fixture(scope="module")
def gateway_http(processes: dict[str, Process]) -> httpx.Client:
    """A logged-in client of the gateway (the services behind it are the real processes)."""
    url = processes["gateway"].url
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        user = {"username": "corpus", "email": "corpus@example.com", "password": "corpus password 123"}
        assert client.post("/api/register", json=user).status_code == 201
        token = client.post("/api/login", data={"username": "corpus", "password": user["password"]}).json()
        client.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield client


def test_gateway_upload_routes_refuse_the_corpus(gateway_http: httpx.Client, processes: dict[str, Process]) -> None:
    audio = {c.name: c for c in audio_cases()}
    images = {c.name: c for c in image_cases()}
    for name in GATEWAY_AUDIO:
        response = gateway_http.post("/api/predict/speech", files={"audio": ("a.bin", audio[name].data, "audio/wav")})
        assert_error_shape(response, audio[name].expected | {415, 422})
    for name in GATEWAY_IMAGES:
        response = gateway_http.post("/api/predict/image", files={"image": ("i.bin", images[name].data, "image/png")})
        assert_error_shape(response, images[name].expected | {415, 422})
    # Nothing refused was stored.
    assert gateway_http.get("/api/predictions").json()["total"] == 0
    for process in processes.values():
        assert_ready(gateway_http, process.url)
