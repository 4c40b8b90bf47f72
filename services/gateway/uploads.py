"""Upload checks: per-file size while reading in chunks, and file type by content (magic bytes)."""

from dataclasses import dataclass
from typing import Final

from fastapi import UploadFile

from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

CHUNK_BYTES: Final = 64 * 1024
AUDIO_TYPES: Final = ("WAV", "FLAC", "OGG", "MP3")
IMAGE_TYPES: Final = ("JPEG", "PNG", "WebP", "BMP")
_MIME: Final = {
    "WAV": "audio/wav",
    "FLAC": "audio/flac",
    "OGG": "audio/ogg",
    "MP3": "audio/mpeg",
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WebP": "image/webp",
    "BMP": "image/bmp",
}


def sniff(head: bytes) -> str | None:
    """The container format from a file's first bytes, or None if not one we accept."""
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "WAV"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    if head.startswith(b"fLaC"):
        return "FLAC"
    if head.startswith(b"OggS"):
        return "OGG"
    # ID3v2 tag, or a bare MPEG audio frame sync (11 set bits) with a valid layer.
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return "MP3"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"BM") and len(head) >= 14:
        return "BMP"
    return None


@dataclass(frozen=True)
class Upload:
    """A checked upload, ready to forward."""

    field: str
    filename: str
    content: bytes
    kind: str

    @property
    def media_type(self) -> str:
        """The MIME type matching the detected content (not what the client claimed)."""
        return _MIME[self.kind]


async def read_upload(file: UploadFile, *, field: str, max_bytes: int, allowed: tuple[str, ...]) -> Upload:
    """Read ``file`` in chunks (413 past ``max_bytes``), then check its type by content (415)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"{field} exceeds the {max_bytes:,}-byte limit")
        chunks.append(chunk)
    content = b"".join(chunks)
    if not content:
        raise InvalidInput(f"{field} is an empty file")
    kind = sniff(content[:16])
    if kind not in allowed:
        raise UnsupportedMediaType(
            f"{field} must be one of {', '.join(allowed)} (detected from its content, not its name or type)"
        )
    filename = (file.filename or field).rsplit("/", 1)[-1][:200] or field
    return Upload(field=field, filename=filename, content=content, kind=kind)
