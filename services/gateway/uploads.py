"""Upload checks: per-file size while reading in chunks, and file type by content (:mod:`shared.sniff`)."""

from dataclasses import dataclass
from typing import Final

from fastapi import UploadFile

from shared import sniff
from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

CHUNK_BYTES: Final = 64 * 1024
#: What the gateway forwards: exactly what the services decode (one sniffer decides for all).
AUDIO_TYPES: Final = sniff.AUDIO
IMAGE_TYPES: Final = sniff.IMAGE
VIDEO_TYPES: Final = sniff.VIDEO


@dataclass(frozen=True)
class Upload:
    """A checked upload, ready to forward."""

    field: str
    filename: str
    content: bytes
    format: sniff.Format

    @property
    def kind(self) -> str:
        """The detected format's name (``WAV``, ``PNG``, ...)."""
        return self.format.name

    @property
    def media_type(self) -> str:
        """The MIME type matching the detected content (not what the client claimed)."""
        return self.format.mime


async def read_upload(file: UploadFile, *, field: str, max_bytes: int, allowed: tuple[sniff.Format, ...]) -> Upload:
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
    detected = sniff.sniff(content)
    if detected is None or detected not in allowed:
        raise UnsupportedMediaType(
            f"{field} must be one of {sniff.names(allowed)} (detected from its content, not its name or type)"
        )
    filename = (file.filename or field).rsplit("/", 1)[-1][:200] or field
    return Upload(field=field, filename=filename, content=content, format=detected)
