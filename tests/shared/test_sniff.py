"""The one content sniffer: real files of each format, and the gateway and services agreeing on every one."""

import io
import struct
import zipfile

import numpy as np
import pytest
import soundfile as sf
from fastapi import UploadFile
from PIL import Image

from services.gateway.uploads import AUDIO_TYPES, IMAGE_TYPES, read_upload
from services.image.decoding import decode_image
from services.image.decoding import sniff_format as image_format
from services.speech.audio import decode
from services.speech.audio import sniff_format as audio_format
from shared import sniff
from shared.errors import ServiceError, UnsupportedMediaType


def tone(seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def sound(fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(), 16000, format=fmt, subtype=subtype)
    return buffer.getvalue()


def picture(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 120, 40)).save(buffer, format=fmt)
    return buffer.getvalue()


def ebml(doctype: bytes) -> bytes:
    """An EBML header (as Matroska/WebM files start) declaring ``doctype``."""
    body = b"\x42\x86\x81\x01" + b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(body)]) + body + b"\x18\x53\x80\x67" + b"\x00" * 16


def iso_media(brand: bytes) -> bytes:
    return struct.pack(">I", 24) + b"ftyp" + brand + b"\x00\x00\x02\x00" + brand + b"mp41" + b"\x00" * 16


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "hello")
    return buffer.getvalue()


CORPUS: dict[str, tuple[bytes, str | None]] = {
    "wav": (sound("WAV", "PCM_16"), "WAV"),
    "wav-float": (sound("WAV", "FLOAT"), "WAV"),
    "rf64": (sound("RF64", "PCM_16"), "WAV"),
    "w64": (sound("W64", "PCM_16"), "WAV"),
    "flac": (sound("FLAC", "PCM_16"), "FLAC"),
    "ogg-vorbis": (sound("OGG", "VORBIS"), "OGG"),
    "mp3": (sound("MP3", "MPEG_LAYER_III"), "MP3"),
    "aiff": (sound("AIFF", "PCM_16"), "AIFF"),
    "jpeg": (picture("JPEG"), "JPEG"),
    "png": (picture("PNG"), "PNG"),
    "webp": (picture("WEBP"), "WebP"),
    "bmp": (picture("BMP"), "BMP"),
    "gif": (picture("GIF"), "GIF"),
    "tiff": (picture("TIFF"), "TIFF"),
    "mp4": (iso_media(b"isom"), "MP4"),
    "mov": (iso_media(b"qt  "), "MOV"),
    "m4a": (iso_media(b"M4A "), "M4A"),
    "webm": (ebml(b"webm"), "WebM"),
    "mkv": (ebml(b"matroska"), "MKV"),
    "flv": (b"FLV\x01\x05\x00\x00\x00\x09" + b"\x00" * 16, "FLV"),
    "avi": (b"RIFF\x24\x00\x00\x00AVI LIST" + b"\x00" * 16, "AVI"),
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
    "zip": (zip_bytes(), "ZIP"),
    "text": (b"just some text, honestly\n", None),
    "bm-text": (b"BMW drivers are " + b"x" * 20, None),
    "mpeg-reserved-layer": (b"\xff\xe0" + b"\x00" * 30, None),
    "adts-aac": (b"\xff\xf1\x50\x80" + b"\x00" * 30, None),
    "empty": (b"", None),
}


@pytest.mark.parametrize("case", CORPUS)
def test_each_format_is_named_from_its_content(case: str) -> None:
    data, expected = CORPUS[case]
    found = sniff.sniff(data)
    assert (found.name if found else None) == expected


def test_the_first_bytes_are_enough() -> None:
    for case, (data, expected) in CORPUS.items():
        found = sniff.sniff(data[: sniff.HEAD_BYTES])
        assert (found.name if found else None) == expected, case


async def gateway_accepts(data: bytes, allowed: tuple[sniff.Format, ...]) -> bool:
    try:
        await read_upload(UploadFile(io.BytesIO(data), filename="x"), field="f", max_bytes=1 << 20, allowed=allowed)
    except UnsupportedMediaType:
        return False
    except ServiceError:  # empty: refused for another reason, before the type
        return False
    return True


def speech_accepts(data: bytes) -> bool:
    try:
        audio_format(data)
    except UnsupportedMediaType:
        return False
    return True


@pytest.mark.parametrize("case", CORPUS)
async def test_gateway_and_services_agree(case: str) -> None:
    data, _ = CORPUS[case]
    if not data:
        return
    assert await gateway_accepts(data, AUDIO_TYPES) == speech_accepts(data), case
    assert await gateway_accepts(data, IMAGE_TYPES) == (image_format(data) is not None), case


@pytest.mark.parametrize("case", ["wav", "wav-float", "rf64", "w64", "flac", "ogg-vorbis", "mp3"])
def test_every_audio_file_the_gateway_forwards_decodes(case: str) -> None:
    samples = decode(CORPUS[case][0], sample_rate=16000, max_duration_s=10.0)
    assert samples.shape[0] == pytest.approx(8000, abs=1200)  # MP3 adds encoder padding


@pytest.mark.parametrize("case", ["jpeg", "png", "webp", "bmp"])
def test_every_image_the_gateway_forwards_decodes(case: str) -> None:
    decoded = decode_image(CORPUS[case][0], max_pixels=1_000_000)
    assert (decoded.width, decoded.height) == (16, 12)


def test_video_containers_are_recognised_for_the_video_path() -> None:
    assert {f.name for f in sniff.VIDEO} == {"MP4", "MOV", "WebM", "MKV", "FLV", "AVI"}
    for case in ("mp4", "mov", "webm", "mkv", "flv", "avi"):
        found = sniff.sniff(CORPUS[case][0])
        assert found is not None
        assert found.kind == "video"
        assert found in sniff.VIDEO
        assert found.mime.startswith("video/")
