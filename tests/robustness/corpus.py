"""A bad-input corpus, generated (milliseconds) rather than committed: for each accepted audio and
image format, empty, truncated, corrupt, polyglot and lying-header files, and the memory bombs.

Each case names the statuses a correct service may answer; 5xx is never among them.
"""

import io
import struct
import zlib
from collections.abc import Callable
from functools import cache, cached_property

import numpy as np
import soundfile as sf
from PIL import Image

from tests.robustness.ogg import stretch, with_last_granule

#: Statuses a refusal may have: too large, unsupported type, unprocessable.
REFUSED = frozenset({413, 415, 422})


class Case:
    """One file (built on first use, so collecting the tests stays cheap) and the statuses a correct
    service may answer for it."""

    def __init__(self, name: str, build: Callable[[], bytes], expected: frozenset[int] = REFUSED) -> None:
        self.name = name
        self.expected = expected
        self._build = build

    @cached_property
    def data(self) -> bytes:
        return self._build()

    def __repr__(self) -> str:  # pytest ids
        return self.name


# ----------------------------------------------------------------------------------------------- audio


def tone(seconds: float, rate: int, channels: int = 1, level: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    y = (level * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return np.repeat(y[:, None], channels, axis=1)


def encode(y: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def wav_header(*, channels: int, rate: int, bits: int = 16, data_bytes: int = 0, fmt_tag: int = 1) -> bytes:
    """A canonical 44-byte WAV header (no samples follow unless the caller appends them)."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", (36 + data_bytes) & 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes & 0xFFFFFFFF)
    )


def flac_total_samples(data: bytes, total: int) -> bytes:
    """A FLAC whose STREAMINFO claims ``total`` samples per channel (36 bits) while the frames hold few."""
    info = bytearray(data)
    # fLaC, block header (4 bytes), then STREAMINFO: total samples in the low 36 bits of bytes 13..17.
    at = 8 + 13
    packed = int.from_bytes(info[at : at + 5], "big")
    packed = (packed & ~((1 << 36) - 1)) | (total & ((1 << 36) - 1))
    info[at : at + 5] = packed.to_bytes(5, "big")
    return bytes(info)


@cache
def silent_ogg(channels: int, rate: int, subtype: str, seconds: float) -> bytes:
    """Silent Ogg of ``seconds``: the pages of a 2 s encoding repeated (a 32-channel 599 s Vorbis is ~200 KB)."""
    unit_s = 2.0
    short = encode(np.zeros((int(unit_s * rate), channels), np.float32), rate, "OGG", subtype)
    return stretch(short, max(1, round(seconds / unit_s)))


@cache
def good_audio() -> dict[str, bytes]:
    """One valid short file per accepted audio format (the seeds that get truncated and corrupted)."""
    return {
        "wav": encode(tone(1.0, 16000), 16000, "WAV", "PCM_16"),
        "rf64": encode(tone(1.0, 16000), 16000, "RF64", "PCM_16"),
        "flac": encode(tone(1.0, 16000), 16000, "FLAC", "PCM_16"),
        "vorbis": encode(tone(1.0, 16000), 16000, "OGG", "VORBIS"),
        "opus": encode(tone(1.0, 48000), 48000, "OGG", "OPUS"),
        "mp3": encode(tone(1.0, 16000), 16000, "MP3", "MPEG_LAYER_III"),
    }


AUDIO_FORMATS = ("wav", "rf64", "flac", "vorbis", "opus", "mp3")


def _audio_variants(name: str) -> list[Case]:
    def seed() -> bytes:
        return good_audio()[name]

    return [
        Case(f"{name}_magic_only", lambda: seed()[:12]),
        Case(f"{name}_truncated_header", lambda: seed()[: min(40, len(seed()) // 4)]),
        Case(f"{name}_magic_then_garbage", lambda: seed()[:12] + bytes(range(256)) * 8),
        Case(f"{name}_then_png", lambda: seed()[:12] + b"\x89PNG\r\n\x1a\n" + bytes(512)),
    ]


def audio_cases() -> list[Case]:
    """Bad files for every format the speech service accepts (WAV/RF64, FLAC, OGG Vorbis/Opus, MP3)."""
    cases = [
        Case("empty", lambda: b""),
        Case("text", lambda: b"hello, I am plain text and not a sound at all\n" * 4, frozenset({415})),
        Case("png_as_audio", lambda: b"\x89PNG\r\n\x1a\n" + bytes(200), frozenset({415})),
        Case("zip", lambda: b"PK\x03\x04" + bytes(200), frozenset({415})),
    ]
    for name in AUDIO_FORMATS:
        cases += _audio_variants(name)
    cases += [
        # Header-only WAVs: no samples, or layouts that no speech clip has.
        Case("wav_no_samples", lambda: wav_header(channels=1, rate=16000)),
        Case("wav_huge_data_size", lambda: wav_header(channels=1, rate=16000, data_bytes=0xFFFFFFF0) + bytes(3200)),
        Case("wav_64_channels", lambda: wav_header(channels=64, rate=16000, data_bytes=128_000) + bytes(128_000)),
        Case("wav_rate_1hz", lambda: wav_header(channels=1, rate=1, data_bytes=2000) + bytes(2000)),
        Case("wav_rate_4ghz", lambda: wav_header(channels=1, rate=4_000_000_000, data_bytes=2000) + bytes(2000)),
        Case("wav_zero_channels", lambda: wav_header(channels=0, rate=16000, data_bytes=2000) + bytes(2000)),
        Case("wav_nan_float", _nan_wav),
        Case("wav_silence", lambda: encode(np.zeros((16000, 1), np.float32), 16000, "WAV", "PCM_16")),
        # Headers that lie about the duration: refused before anything is decoded.
        Case("flac_claims_20h", lambda: flac_total_samples(good_audio()["flac"], 16000 * 72_000), frozenset({413})),
        Case("vorbis_claims_599s_32ch", _vorbis_32ch_lie, frozenset({413, 422})),
        # The bomb shape: a real silent 32-channel 48 kHz 599 s Vorbis (~200 KB).
        Case("vorbis_bomb_32ch_599s", lambda: silent_ogg(32, 48000, "VORBIS", 599.0), frozenset({413, 422})),
        Case("opus_claims_2h", lambda: with_last_granule(good_audio()["opus"], 48000 * 7200), frozenset({413})),
    ]
    return cases


def _nan_wav() -> bytes:
    y = tone(1.0, 16000)
    y[100:200] = np.nan
    return encode(y, 16000, "WAV", "FLOAT")


def _vorbis_32ch_lie() -> bytes:
    short = encode(tone(0.5, 48000, channels=32, level=1e-4), 48000, "OGG", "VORBIS")
    return with_last_granule(short, 48000 * 599)


# ----------------------------------------------------------------------------------------------- images


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_sixteen_bit(side: int) -> bytes:
    """A ``side`` x ``side`` 16-bit greyscale PNG of zeros: tens of KB that decode to 2 bytes a pixel."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + bytes(2 * side)
    parts = [compressor.compress(row) for _ in range(side)]
    idat = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def png_header(width: int, height: int, *, bits: int = 8, colour: int = 0) -> bytes:
    """A PNG that claims ``width`` x ``height`` but carries almost no data."""
    header = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def pil_bytes(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """A JPEG whose SOF marker claims another size."""
    out = bytearray(data)
    at = 2
    while at < len(out):
        marker, length = out[at + 1], int.from_bytes(out[at + 2 : at + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            out[at + 5 : at + 9] = struct.pack(">HH", height, width)
            return bytes(out)
        at += 2 + length
    raise AssertionError("no SOF marker")


def bmp_header(width: int, height: int, bits: int = 24) -> bytes:
    """A BMP info header for ``width`` x ``height`` followed by a few bytes of pixels."""
    pixels = bytes(64)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(pixels), 0, 0, 14 + 40) + info + pixels


def webp_lossless_header(width: int, height: int) -> bytes:
    """A VP8L WebP whose header claims ``width`` x ``height`` (14-bit fields) with no image data."""
    bits = (width - 1) | ((height - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits) + bytes(16)
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


@cache
def good_images() -> dict[str, bytes]:
    """One valid small file per accepted image format."""
    rgb = Image.new("RGB", (64, 48), (120, 80, 40))
    return {
        "jpeg": pil_bytes(rgb, "JPEG", quality=90),
        "png": pil_bytes(rgb, "PNG"),
        "webp": pil_bytes(rgb, "WEBP"),
        "bmp": pil_bytes(rgb, "BMP"),
    }


IMAGE_FORMATS = ("jpeg", "png", "webp", "bmp")


def _image_variants(name: str) -> list[Case]:
    def seed() -> bytes:
        return good_images()[name]

    return [
        Case(f"{name}_magic_only", lambda: seed()[:4] if name != "webp" else seed()[:12]),
        Case(f"{name}_truncated", lambda: seed()[: max(16, len(seed()) // 3)]),
        Case(f"{name}_corrupt_body", lambda: seed()[:20] + bytes(len(seed()) - 20)),
        Case(f"{name}_then_wav", lambda: seed()[:16] + wav_header(channels=1, rate=16000)),
    ]


def image_cases() -> list[Case]:
    """Bad files for every format the image service accepts (JPEG, PNG, WebP, BMP), and lying headers."""
    not_images = frozenset({415, 422})
    cases = [
        Case("empty", lambda: b""),
        Case("text", lambda: b"plain text, not an image\n" * 8, not_images),
        Case("gif", lambda: pil_bytes(Image.new("P", (8, 8)), "GIF"), not_images),
        Case("wav_as_image", lambda: wav_header(channels=1, rate=16000, data_bytes=200) + bytes(200), not_images),
        Case("pdf", lambda: b"%PDF-1.4\n" + bytes(100), not_images),
    ]
    for name in IMAGE_FORMATS:
        cases += _image_variants(name)
    png = good_images
    cases += [
        Case("png_bad_crc", lambda: png()["png"][:29] + b"\x00\x00\x00\x00" + png()["png"][33:]),
        Case("png_header_100k_square", lambda: png_header(100_000, 100_000), frozenset({413})),
        Case("png_header_1x2g", lambda: png_header(1, 2_000_000_000), frozenset({413})),
        Case("png_header_zero_width", lambda: png_header(0, 10)),
        Case("jpeg_claims_65000_square", lambda: jpeg_with_size(png()["jpeg"], 65000, 65000), frozenset({413})),
        Case("bmp_header_huge", lambda: bmp_header(50_000, 50_000), frozenset({413})),
        Case("bmp_header_negative_width", lambda: bmp_header(-64, 48)),
        Case("webp_header_16k_square", lambda: webp_lossless_header(16383, 16383), frozenset({413})),
        # A 16-bit RGBA 6300x6300 PNG: under the pixel limit, over the bytes-per-pixel budget.
        Case("png_16bit_rgba_6300", lambda: png_header(6300, 6300, bits=16, colour=6), frozenset({413})),
    ]
    return cases
