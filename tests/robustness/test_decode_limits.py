"""The decode limits in process (fast): header checks, memory budgets, and that bounded decoding
gives the same pixels and samples as decoding whole."""

import io
import threading
import time

import librosa
import numpy as np
import pytest
from PIL import Image

from services.image.decoding import (
    MAX_IMAGE_DECODE_BYTES,
    STRIP_PIXELS,
    DecodeBudget,
    decode_image,
    decoded_batch,
    plan_image,
)
from services.image.errors import DecoderBusy, ImageTooLarge
from services.speech.audio import MAX_CHANNELS, check_batch, check_header, decode, max_decoded_samples, read_header
from services.speech.errors import AudioTooBig, AudioTooLong, UnsupportedLayout
from tests.robustness.corpus import encode, good_images, pil_bytes, png_header, png_sixteen_bit, silent_ogg, tone

LIMIT = 40_000_000


def test_sixteen_bit_png_is_budgeted_at_two_bytes_a_pixel() -> None:
    plan = plan_image(png_sixteen_bit(6300), max_pixels=LIMIT)
    assert plan.mode.startswith("I;16")
    pixels = 6300 * 6300
    assert 3 * pixels <= plan.cost <= 3 * pixels + STRIP_PIXELS * 16
    assert plan.cost < MAX_IMAGE_DECODE_BYTES


def test_a_tighter_byte_budget_refuses_what_the_pixel_limit_allows() -> None:
    with pytest.raises(ImageTooLarge, match="bytes to decode"):
        plan_image(png_sixteen_bit(2000), max_pixels=LIMIT, max_bytes=8 * 1024 * 1024)
    # 16-bit RGBA is stored 4 bytes a pixel: 6300 x 6300 is under the pixel limit, over the bytes.
    with pytest.raises(ImageTooLarge, match="RGBA"):
        plan_image(png_header(6300, 6300, bits=16, colour=6), max_pixels=LIMIT)


def test_a_batch_is_budgeted_as_a_whole() -> None:
    bomb = png_sixteen_bit(3000)  # ~9 MP: 27 MB to decode, 9 MB kept
    with pytest.raises(ImageTooLarge, match="batch") as caught:
        with decoded_batch([bomb] * 32, max_pixels=LIMIT, budget=DecodeBudget(1 << 30)):
            pass
    assert caught.value.status_code == 413
    with decoded_batch([bomb] * 2, max_pixels=LIMIT, budget=DecodeBudget(1 << 30)) as images:
        assert [i.grey.shape for i in images] == [(3000, 3000)] * 2


def test_the_process_budget_makes_requests_wait_then_503() -> None:
    budget = DecodeBudget(100, wait_s=0.2)
    with budget.reserve(80):
        with pytest.raises(DecoderBusy) as caught, budget.reserve(50):
            pass
        assert caught.value.status_code == 503
    released = threading.Event()

    def hold() -> None:
        with budget.reserve(80):
            time.sleep(0.1)
        released.set()

    worker = threading.Thread(target=hold)
    worker.start()
    time.sleep(0.02)
    slow = DecodeBudget(100, wait_s=5.0)
    with slow.reserve(60):
        pass
    worker.join()
    assert released.is_set() and budget.free == 100


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I;16", "I", "F", "1", "CMYK"])
def test_strip_conversion_matches_whole_image_conversion(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 255, (37, 23, 4), dtype=np.uint8), "RGBA")
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65535, (37, 23), dtype=np.uint16))
    elif mode in {"I", "F"}:
        image = Image.fromarray(rng.integers(0, 65535, (37, 23)).astype(np.int32 if mode == "I" else np.float32))
    else:
        image = rgba.convert(mode)
    fmt = "TIFF" if mode in {"I", "F", "CMYK", "LA"} else "PNG"
    data = pil_bytes(image, fmt)
    opened = Image.open(io.BytesIO(data))
    from services.image import decoding

    whole = decoding._to_grey(opened)
    monkeypatch.setattr(decoding, "STRIP_PIXELS", 23 * 3)  # three rows a strip
    strips = decoding._to_grey(Image.open(io.BytesIO(data)))
    assert np.array_equal(whole, strips)


def test_jpeg_decodes_straight_to_luminance_close_to_rgb_conversion() -> None:
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).resize((192, 128))
    data = pil_bytes(rgb, "JPEG", quality=95)
    reference = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.int16)
    grey = decode_image(data, max_pixels=LIMIT).grey
    assert grey.shape == reference.shape
    # Y straight from the JPEG vs RGB (chroma upsampled) -> L: off by rounding, on worst-case noise a few levels.
    difference = np.abs(grey.astype(np.int16) - reference)
    assert difference.mean() < 0.5
    assert difference.max() <= 8


def test_good_images_still_decode() -> None:
    for name, data in good_images().items():
        assert decode_image(data, max_pixels=LIMIT).grey.shape == (48, 64), name


def test_audio_header_checks() -> None:
    header = read_header(encode(tone(0.5, 16000, channels=MAX_CHANNELS + 1), 16000, "WAV", "PCM_16"))
    assert header.channels == MAX_CHANNELS + 1
    with pytest.raises(UnsupportedLayout, match="channels"):
        check_header(header, max_duration_s=600)
    with pytest.raises(AudioTooLong):
        check_header(read_header(silent_ogg(2, 48000, "VORBIS", 60.0)), max_duration_s=30)
    # Eight channels at 48 kHz for 300 s is under the duration limit but over the samples budget.
    with pytest.raises(AudioTooBig) as caught:
        check_header(read_header(silent_ogg(8, 48000, "VORBIS", 300.0)), max_duration_s=600)
    assert caught.value.status_code == 413
    assert max_decoded_samples(600) == 600 * 48000 * 2


def test_blockwise_decode_equals_whole_decode() -> None:
    """Mixing down and resampling block by block gives librosa's whole-clip result."""
    rng = np.random.default_rng(2)
    y = (0.1 * rng.standard_normal((44100 * 3 + 17, 3))).astype(np.float32)
    data = encode(y, 44100, "WAV", "FLOAT")
    expected = librosa.resample(y.mean(axis=1), orig_sr=44100, target_sr=16000, res_type="soxr_hq")
    got = decode(data, sample_rate=16000, max_duration_s=600)
    # The streaming resampler may round the total length the other way (one sample at the end).
    assert abs(got.shape[0] - expected.shape[0]) <= 1
    n = min(got.shape[0], expected.shape[0]) - 8
    assert np.abs(got[:n] - expected[:n]).max() < 1e-5


def test_a_speech_batch_is_budgeted_on_its_total_duration() -> None:
    long = silent_ogg(1, 16000, "VORBIS", 400.0)
    check_batch([long], max_duration_s=600)
    with pytest.raises(AudioTooLong, match="in total") as caught:
        check_batch([long] * 4, max_duration_s=600)  # 1600 s > 2 x 600 s
    assert caught.value.status_code == 413
    check_batch([b"not audio", long], max_duration_s=600)  # unreadable items are left to decode()
