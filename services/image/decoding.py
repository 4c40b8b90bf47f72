"""Turn uploaded bytes into an upright 8-bit greyscale array, checking format, size and memory by content.

Memory is budgeted from the header before any pixel is decoded: bytes per pixel of the decoded
mode x pixels (+ decoder buffers + the grey output), per image, per request and for the whole
process. JPEGs decode straight to luminance; other modes are converted to grey strip by strip.
"""

import ctypes
import io
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import Image, UnidentifiedImageError, _imaging

from services.image.errors import (
    BATCH_TOO_MUCH_MEMORY,
    CORRUPT_IMAGE,
    DECODER_BUSY,
    DECOMPRESSION_BOMB,
    EMPTY_IMAGE,
    NOT_AN_IMAGE,
    TOO_MANY_PIXELS,
    TOO_MUCH_MEMORY,
    DecoderBusy,
    ImageTooLarge,
    InvalidImage,
    UnsupportedImage,
)
from shared.errors import ServiceError
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


#: Bytes per pixel of PIL's in-memory storage by mode (multi-band modes are stored 4 bytes a pixel).
_MODE_BYTES: dict[str, int] = {
    "1": 1,
    "L": 1,
    "P": 1,
    "I;16": 2,
    "I;16L": 2,
    "I;16B": 2,
    "I;16N": 2,
    "I": 4,
    "F": 4,
    **dict.fromkeys(("RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "LA", "La", "PA"), 4),
}
_UNKNOWN_MODE_BYTES = 8
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}

#: Estimated peak bytes to decode one image (decoder buffers + PIL image + grey output).
MAX_IMAGE_DECODE_BYTES = 192 * 1024 * 1024
#: A whole request (a batch included): the largest image's decode plus every grey output kept for inference.
MAX_REQUEST_DECODE_BYTES = 256 * 1024 * 1024
#: All requests of the process together; a request waits for its share, then gets 503.
PROCESS_DECODE_BYTES = 256 * 1024 * 1024
BUDGET_WAIT_S = 20.0
#: Mode conversion runs on strips of about this many pixels, so its temporaries stay small.
STRIP_PIXELS = 1 << 20

#: Pillow allocates pixels in blocks of this size. Above glibc's 32 MiB mmap threshold they are
#: mapped and unmapped, so a large image's memory goes back to the OS when it is closed instead
#: of staying in the decoding thread's malloc arena (4 worker threads kept ~+225 MiB that way).
PIL_BLOCK_SIZE = 64 * 1024 * 1024
_imaging.set_block_size(PIL_BLOCK_SIZE)

_ORIENTATION_TAG = 0x0112
_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, OverflowError, TypeError)


@dataclass(frozen=True)
class DecodePlan:
    """What the header says an image will cost, before any pixel is decoded."""

    format: str
    mode: str
    width: int
    height: int
    #: Estimated peak bytes while decoding this image.
    cost: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def kept(self) -> int:
        """Bytes that stay in memory after decoding (the 8-bit grey array)."""
        return self.pixels


class DecodeBudget:
    """A byte budget shared by concurrent decodes: a request reserves its estimated peak or waits."""

    def __init__(self, total: int, *, wait_s: float = BUDGET_WAIT_S) -> None:
        self.total = total
        self.wait_s = wait_s
        self._free = total
        self._cond = threading.Condition()

    @property
    def free(self) -> int:
        return self._free

    @contextmanager
    def reserve(self, amount: int) -> Iterator[None]:
        """Hold ``amount`` bytes (capped at the total) for the block; DecoderBusy after ``wait_s``."""
        amount = min(amount, self.total)
        with self._cond:
            if not self._cond.wait_for(lambda: self._free >= amount, timeout=self.wait_s):
                raise DecoderBusy(DECODER_BUSY, headers={"Retry-After": "5"})
            self._free -= amount
        try:
            yield
        finally:
            with self._cond:
                self._free += amount
                self._cond.notify_all()


#: The image service's process-wide budget.
DECODE_BUDGET = DecodeBudget(PROCESS_DECODE_BYTES)


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        return cast(Callable[[int], int], ctypes.CDLL("libc.so.6").malloc_trim)
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_memory() -> None:
    """Hand freed heap pages of every malloc arena back to the OS (glibc); a few ms after a large decode."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _open(data: bytes, *, max_pixels: int) -> tuple[str, Image.Image]:
    if not data:
        raise InvalidImage(EMPTY_IMAGE)
    expected = sniff_format(data)
    if expected is None:
        raise UnsupportedImage(NOT_AN_IMAGE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return expected, Image.open(io.BytesIO(data), formats=[expected])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(DECOMPRESSION_BOMB.format(limit=max_pixels)) from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage(CORRUPT_IMAGE) from exc


def _plan(fmt: str, image: Image.Image, *, max_pixels: int, max_bytes: int) -> DecodePlan:
    """Check pixels and bytes from the (lazy) header; JPEGs are set to decode straight to grey."""
    width, height = image.size
    pixels = width * height
    if width <= 0 or height <= 0:
        raise InvalidImage(CORRUPT_IMAGE)
    if pixels > max_pixels:
        raise ImageTooLarge(TOO_MANY_PIXELS.format(pixels=pixels, limit=max_pixels))
    if fmt == "JPEG" and image.mode in {"RGB", "YCbCr"}:
        # libjpeg emits luminance directly: 1 byte a pixel instead of PIL's 4 for RGB.
        image.draft("L", image.size)
    decoded = pixels * _MODE_BYTES.get(image.mode, _UNKNOWN_MODE_BYTES)
    if fmt == "WEBP":
        decoded *= 2  # libwebp decodes into its own buffer, which is then copied into the image
    if fmt == "JPEG" and image.info.get("progressive"):
        decoded += pixels * 2 * len(image.getbands())  # progressive JPEGs keep every DCT coefficient
    cost = decoded + pixels + min(pixels, STRIP_PIXELS) * 16
    if cost > max_bytes:
        raise ImageTooLarge(TOO_MUCH_MEMORY.format(need=cost, mode=image.mode, pixels=pixels, limit=max_bytes))
    return DecodePlan(format=fmt, mode=image.mode, width=width, height=height, cost=cost)


def plan_image(data: bytes, *, max_pixels: int, max_bytes: int = MAX_IMAGE_DECODE_BYTES) -> DecodePlan:
    """What decoding ``data`` would cost, from its header only (422/413 as :func:`decode_image`)."""
    fmt, image = _open(data, max_pixels=max_pixels)
    with image:
        return _plan(fmt, image, max_pixels=max_pixels, max_bytes=max_bytes)


def _strips(image: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    width, height = image.size
    rows = max(1, STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        yield top, image.crop((0, top, width, min(top + rows, height)))


def _to_grey(image: Image.Image) -> np.ndarray:
    """8-bit luminance from any PIL mode, strip by strip: alpha on white, palette expanded, 16-bit/float rescaled."""
    width, height = image.size
    mode = image.mode
    out = np.empty((height, width), dtype=np.uint8)
    if mode in _SIXTEEN_BIT or mode == "F":
        low, high = np.inf, -np.inf
        for _, strip in _strips(image):
            values = np.asarray(strip, dtype=np.float64)
            low, high = min(low, float(values.min(initial=np.inf))), max(high, float(values.max(initial=-np.inf)))
        low, high = min(low, 0.0), max(high, 0.0)  # as ``initial=0`` did on the whole image
    for top, strip in _strips(image):
        rows = strip.size[1]
        if mode in _SIXTEEN_BIT:
            top_value = 65535.0 if high > 255 else 255.0
            values = np.asarray(strip, dtype=np.float64)
            out[top : top + rows] = np.clip(values / top_value * 255.0 + 0.5, 0, 255).astype(np.uint8)
        elif mode == "F":
            values = np.asarray(strip, dtype=np.float64)
            scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
            out[top : top + rows] = scaled.astype(np.uint8)
        else:
            out[top : top + rows] = _strip_to_grey(strip)
    return out


def _strip_to_grey(strip: Image.Image) -> np.ndarray:
    if strip.mode in {"P", "PA", "LA"}:
        strip = strip.convert("RGBA")
    if strip.mode == "RGBA":
        strip = Image.alpha_composite(Image.new("RGBA", strip.size, (255, 255, 255, 255)), strip)
    return np.asarray(strip.convert("L"), dtype=np.uint8)


def _orient(grey: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (as ``ImageOps.exif_transpose``) to a 2-D array; views, no copy."""
    if orientation == 2:
        return grey[:, ::-1]
    if orientation == 3:
        return grey[::-1, ::-1]
    if orientation == 4:
        return grey[::-1, :]
    if orientation == 5:
        return grey.T
    if orientation == 6:
        return np.rot90(grey, -1)
    if orientation == 7:
        return np.rot90(grey, 2).T
    if orientation == 8:
        return np.rot90(grey, 1)
    return grey


def _decode_planned(fmt: str, image: Image.Image, *, max_pixels: int) -> DecodedImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            orientation = image.getexif().get(_ORIENTATION_TAG, 1)
            image.load()
            grey = _to_grey(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(DECOMPRESSION_BOMB.format(limit=max_pixels)) from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage(CORRUPT_IMAGE) from exc
    finally:
        image.close()  # frees the decoded pixels before the oriented copy is made
        if image.size[0] * image.size[1] >= STRIP_PIXELS:
            release_memory()
    if grey.ndim != 2 or grey.size == 0:
        raise InvalidImage(CORRUPT_IMAGE)
    oriented = _orient(grey, orientation if isinstance(orientation, int) else 1)
    return DecodedImage(grey=np.ascontiguousarray(oriented), format=fmt)


def decode_image(data: bytes, *, max_pixels: int, max_bytes: int = MAX_IMAGE_DECODE_BYTES) -> DecodedImage:
    """Decode an upload; 422 (InvalidImage) for non-images/corrupt files, 413 (ImageTooLarge) over
    ``max_pixels`` or when its estimated decode memory (bytes per pixel x pixels) exceeds ``max_bytes``.
    """
    fmt, image = _open(data, max_pixels=max_pixels)
    try:
        _plan(fmt, image, max_pixels=max_pixels, max_bytes=max_bytes)
    except BaseException:
        image.close()
        raise
    return _decode_planned(fmt, image, max_pixels=max_pixels)


def _labelled(exc: ServiceError, index: int, many: bool) -> ServiceError:
    if many:
        exc.detail = f"image {index}: {exc.detail}"
    return exc


@contextmanager
def decoded_batch(
    payloads: Sequence[bytes],
    *,
    max_pixels: int,
    max_image_bytes: int = MAX_IMAGE_DECODE_BYTES,
    max_request_bytes: int = MAX_REQUEST_DECODE_BYTES,
    budget: DecodeBudget | None = None,
) -> Iterator[list[DecodedImage]]:
    """Decode a request's images under one memory budget, held until the block (inference) ends.

    Every header is checked before any image is decoded; the request's estimated peak (largest
    decode + every grey array kept) must fit ``max_request_bytes`` (413), then it is reserved
    from the process-wide ``budget`` (waiting, then 503). Errors name the image in a batch.
    """
    many = len(payloads) > 1
    plans: list[DecodePlan] = []
    for index, data in enumerate(payloads):
        try:
            plans.append(plan_image(data, max_pixels=max_pixels, max_bytes=max_image_bytes))
        except ServiceError as exc:
            raise _labelled(exc, index, many) from exc.__cause__
    need = max((p.cost for p in plans), default=0) + sum(p.kept for p in plans)
    if need > max_request_bytes:
        raise ImageTooLarge(BATCH_TOO_MUCH_MEMORY.format(need=need, limit=max_request_bytes))
    with (budget or DECODE_BUDGET).reserve(need):
        images: list[DecodedImage] = []
        for index, data in enumerate(payloads):
            try:
                images.append(decode_image(data, max_pixels=max_pixels, max_bytes=max_image_bytes))
            except ServiceError as exc:
                raise _labelled(exc, index, many) from exc.__cause__
        yield images
