"""Turn uploaded bytes into an upright 8-bit greyscale array, checking format and size by content."""

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from services.image.errors import (
    CORRUPT_IMAGE,
    DECOMPRESSION_BOMB,
    EMPTY_IMAGE,
    NOT_AN_IMAGE,
    TOO_MANY_PIXELS,
    ImageTooLarge,
    InvalidImage,
    UnsupportedImage,
)
from shared.sniff import IMAGE, sniff

#: Accepted formats (PIL names); recognised by :mod:`shared.sniff`, as at the gateway.
ACCEPTED_FORMATS: tuple[str, ...] = tuple(f.pil for f in IMAGE if f.pil)


def sniff_format(data: bytes) -> str | None:
    """The PIL format name implied by the magic bytes, or None if not an accepted format."""
    fmt = sniff(data)
    return fmt.pil if fmt in IMAGE else None


@dataclass(frozen=True)
class DecodedImage:
    """An upright greyscale image (h, w) uint8 plus its format and size after EXIF rotation."""

    grey: np.ndarray
    format: str

    @property
    def width(self) -> int:
        return int(self.grey.shape[1])

    @property
    def height(self) -> int:
        return int(self.grey.shape[0])


def _to_grey(image: Image.Image) -> np.ndarray:
    """8-bit luminance from any PIL mode: alpha composited on white, palette expanded, 16-bit/float rescaled."""
    mode = image.mode
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        return np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min(initial=0)), float(values.max(initial=0))
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        return scaled.astype(np.uint8)
    if mode in {"P", "PA", "LA"}:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def decode_image(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode an upload; 422 (InvalidImage) for non-images/corrupt files, 413 (ImageTooLarge) over ``max_pixels``."""
    if not data:
        raise InvalidImage(EMPTY_IMAGE)
    expected = sniff_format(data)
    if expected is None:
        raise UnsupportedImage(NOT_AN_IMAGE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=[expected])
            width, height = opened.size
            if width * height > max_pixels:
                raise ImageTooLarge(TOO_MANY_PIXELS.format(pixels=width * height, limit=max_pixels))
            opened.load()
            grey = _to_grey(ImageOps.exif_transpose(opened) or opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(DECOMPRESSION_BOMB.format(limit=max_pixels)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidImage(CORRUPT_IMAGE) from exc
    if grey.ndim != 2 or grey.size == 0:
        raise InvalidImage(CORRUPT_IMAGE)
    return DecodedImage(grey=np.ascontiguousarray(grey), format=expected)
