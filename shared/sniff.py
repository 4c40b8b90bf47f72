"""The one content sniffer: what a file is, judged by its first bytes (never by its name or declared type).

The gateway and every service call :func:`sniff`, so a file one accepts the other accepts too.
Each caller decides which formats it takes (``AUDIO``, ``IMAGE``, ``VIDEO``); formats outside
those sets are still named so a 415 can say what was sent.
"""

from dataclasses import dataclass
from typing import Final, Literal

#: How many leading bytes :func:`sniff` looks at (enough for Matroska's DocType).
HEAD_BYTES: Final = 64

Kind = Literal["audio", "image", "video", "other"]


@dataclass(frozen=True)
class Format:
    """A recognised file format."""

    name: str
    kind: Kind
    mime: str
    #: Pillow's format name, for images a service decodes with Pillow.
    pil: str | None = None


WAV: Final = Format("WAV", "audio", "audio/wav")
FLAC: Final = Format("FLAC", "audio", "audio/flac")
OGG: Final = Format("OGG", "audio", "audio/ogg")
MP3: Final = Format("MP3", "audio", "audio/mpeg")
AIFF: Final = Format("AIFF", "audio", "audio/aiff")
M4A: Final = Format("M4A", "audio", "audio/mp4")
JPEG: Final = Format("JPEG", "image", "image/jpeg", "JPEG")
PNG: Final = Format("PNG", "image", "image/png", "PNG")
WEBP: Final = Format("WebP", "image", "image/webp", "WEBP")
BMP: Final = Format("BMP", "image", "image/bmp", "BMP")
GIF: Final = Format("GIF", "image", "image/gif", "GIF")
TIFF: Final = Format("TIFF", "image", "image/tiff", "TIFF")
MP4: Final = Format("MP4", "video", "video/mp4")
MOV: Final = Format("MOV", "video", "video/quicktime")
WEBM: Final = Format("WebM", "video", "video/webm")
MKV: Final = Format("MKV", "video", "video/x-matroska")
FLV: Final = Format("FLV", "video", "video/x-flv")
AVI: Final = Format("AVI", "video", "video/x-msvideo")
PDF: Final = Format("PDF", "other", "application/pdf")
ZIP: Final = Format("ZIP", "other", "application/zip")

#: What the speech service decodes (libsndfile): WAV includes RF64, BW64 and Sony Wave64.
AUDIO: Final = (WAV, FLAC, OGG, MP3)
#: What the image service decodes.
IMAGE: Final = (JPEG, PNG, WEBP, BMP)
#: Video containers, for services that demux them.
VIDEO: Final = (MP4, MOV, WEBM, MKV, FLV, AVI)

_W64_RIFF: Final = bytes.fromhex("726966662e91cf11a5d628db04c10000")
_W64_WAVE: Final = bytes.fromhex("77617665f3acd3118cd100c04f8edb8a")
#: BMP DIB header sizes (core, info, v2, v3, OS/2 v2, v4, v5).
_BMP_DIB_SIZES: Final = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
#: ISO base media brands that hold audio only.
_AUDIO_BRANDS: Final = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})
#: Top-level QuickTime atoms a MOV file may start with instead of ``ftyp``.
_QT_ATOMS: Final = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def _is_mpeg_audio_frame(head: bytes) -> bool:
    # Frame sync (11 set bits), a version that is not "reserved" and a layer that is not "reserved":
    # this also keeps AAC/ADTS (layer bits 00) and JPEG (0xFFD8) out.
    if len(head) < 2 or head[0] != 0xFF:
        return False
    return head[1] & 0xE0 == 0xE0 and head[1] & 0x18 != 0x08 and head[1] & 0x06 != 0


def _riff(head: bytes) -> Format | None:
    form = head[8:12]
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and form == b"WAVE":
        return WAV
    if head[:4] == b"RIFF" and form == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and form == b"AVI ":
        return AVI
    return None


def _iso_media(head: bytes) -> Format | None:
    box = head[4:8]
    if box == b"ftyp":
        brand = head[8:12]
        if brand in _AUDIO_BRANDS:
            return M4A
        return MOV if brand == b"qt  " else MP4
    if box in _QT_ATOMS and int.from_bytes(head[:4], "big") >= 8:
        return MOV
    return None


def sniff(data: bytes) -> Format | None:
    """The format of a file from its first :data:`HEAD_BYTES` bytes, or None if it is none we know."""
    head = bytes(data[:HEAD_BYTES])
    if len(head) >= 12 and (riff := _riff(head)):
        return riff
    if head.startswith(_W64_RIFF) and head[24:40] == _W64_WAVE:
        return WAV
    simple: tuple[tuple[bytes, Format], ...] = (
        (b"fLaC", FLAC),
        (b"OggS", OGG),
        (b"\x89PNG\r\n\x1a\n", PNG),
        (b"\xff\xd8\xff", JPEG),
        (b"GIF87a", GIF),
        (b"GIF89a", GIF),
        (b"II*\x00", TIFF),
        (b"MM\x00*", TIFF),
        (b"FLV\x01", FLV),
        (b"%PDF-", PDF),
        (b"PK\x03\x04", ZIP),
    )
    for signature, fmt in simple:
        if head.startswith(signature):
            return fmt
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, or WebM by its DocType
        return WEBM if b"webm" in head else MKV
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return AIFF
    if head.startswith(b"BM") and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return BMP
    if len(head) >= 12 and (iso := _iso_media(head)):
        return iso
    if head.startswith(b"ID3") or _is_mpeg_audio_frame(head):
        return MP3
    return None


def names(formats: tuple[Format, ...]) -> str:
    """``"WAV, FLAC, OGG, MP3"``: the accepted formats, for messages."""
    return ", ".join(f.name for f in formats)
