"""Decoding by content: accepted formats, colour modes, EXIF rotation, corrupt input and pixel limits."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from services.image.decoding import decode_image, sniff_format
from services.image.errors import (
    CORRUPT_IMAGE,
    EMPTY_IMAGE,
    NOT_AN_IMAGE,
    ImageTooLarge,
    InvalidImage,
    UnsupportedImage,
)
from tests.image.conftest import encode
from tests.image.synth import face_image

LIMIT = 40_000_000


def pil_bytes(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming ``width`` x ``height`` with no image data (a bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_each_accepted_format_decodes_to_grey(fmt: str) -> None:
    data = encode(face_image(200, 120, size=100), fmt)
    assert sniff_format(data) == fmt
    decoded = decode_image(data, max_pixels=LIMIT)
    assert decoded.format == fmt
    assert (decoded.width, decoded.height) == (200, 120)
    assert decoded.grey.dtype == np.uint8
    assert decoded.grey.ndim == 2


def test_rgba_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 0, 255))
    grey = decode_image(pil_bytes(rgba, "PNG"), max_pixels=LIMIT).grey
    assert grey[5, 5] == 255
    assert grey[0, 0] == 0


def test_palette_greyscale_and_sixteen_bit_inputs() -> None:
    palette = Image.new("P", (8, 8))
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.putpixel((1, 1), 1)
    grey = decode_image(pil_bytes(palette, "PNG"), max_pixels=LIMIT).grey
    assert grey[1, 1] == 255
    assert grey[0, 0] == 0

    luminance = Image.fromarray(np.full((6, 9), 77, dtype=np.uint8), mode="L")
    assert decode_image(pil_bytes(luminance, "PNG"), max_pixels=LIMIT).grey.shape == (6, 9)

    sixteen = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    grey16 = decode_image(pil_bytes(sixteen, "PNG"), max_pixels=LIMIT).grey
    assert grey16.dtype == np.uint8
    assert grey16.tolist() == [[0, 128, 255]]


def test_exif_orientation_is_applied() -> None:
    landscape = Image.new("RGB", (60, 20), (255, 255, 255))
    landscape.paste((0, 0, 0), (0, 0, 10, 20))  # dark band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    decoded = decode_image(pil_bytes(landscape, "JPEG", exif=exif), max_pixels=LIMIT)
    assert (decoded.width, decoded.height) == (20, 60)
    # After a 90-degree clockwise rotation the left band is on top.
    assert decoded.grey[:8].mean() < 60
    assert decoded.grey[-8:].mean() > 200


@pytest.mark.parametrize(
    ("data", "message", "status"),
    [
        (b"", EMPTY_IMAGE, 422),
        (b"hello, I am a text file pretending to be a PNG\n", NOT_AN_IMAGE, 415),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", NOT_AN_IMAGE, 415),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, CORRUPT_IMAGE, 422),
        (b"\xff\xd8\xff\xe0" + b"garbage" * 20, CORRUPT_IMAGE, 422),
    ],
)
def test_non_images_are_415_and_corrupt_files_422(data: bytes, message: str, status: int) -> None:
    with pytest.raises((InvalidImage, UnsupportedImage)) as caught:
        decode_image(data, max_pixels=LIMIT)
    assert caught.value.detail == message
    assert caught.value.status_code == status


def test_truncated_jpeg_is_invalid() -> None:
    data = encode(face_image(200, 200, size=100), "JPEG")
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2], max_pixels=LIMIT)


def test_pixel_limit_and_bomb_header_give_413() -> None:
    data = encode(face_image(200, 100, size=80), "PNG")
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data, max_pixels=19_999)
    assert caught.value.status_code == 413
    assert "20,000 pixels" in caught.value.detail
    # A header claiming 100k x 100k is refused before any pixel is decoded.
    with pytest.raises(ImageTooLarge):
        decode_image(png_header_only(100_000, 100_000), max_pixels=LIMIT)
