"""Ogg page surgery, so the tests can build long or lying Ogg (Vorbis/Opus) files in milliseconds.

Encoding 10 minutes of 32-channel audio takes minutes; repeating the audio pages of a short
encoding (renumbered, granule positions shifted, CRCs recomputed) builds the same stream at once.
"""

import struct
from dataclasses import dataclass, replace

_HEADER = struct.Struct("<4sBBqIIIB")


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_TABLE = _crc_table()


def ogg_crc(data: bytes) -> int:
    """The Ogg page checksum (CRC-32, polynomial 0x04c11db7, not reflected, no final xor)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[((crc >> 24) & 0xFF) ^ byte]
    return crc


@dataclass(frozen=True)
class Page:
    """One Ogg page: flags, granule position, serial, sequence number, lacing values and body."""

    flags: int
    granule: int
    serial: int
    sequence: int
    lacing: bytes
    body: bytes

    def encode(self) -> bytes:
        head = _HEADER.pack(b"OggS", 0, self.flags, self.granule, self.serial, self.sequence, 0, len(self.lacing))
        raw = head + self.lacing + self.body
        crc = ogg_crc(raw)
        return raw[:22] + struct.pack("<I", crc) + raw[26:]


def parse_pages(data: bytes) -> list[Page]:
    """The pages of a single-stream Ogg file."""
    pages, pos = [], 0
    while pos < len(data):
        magic, _, flags, granule, serial, sequence, _, count = _HEADER.unpack_from(data, pos)
        assert magic == b"OggS", f"no page at {pos}"
        lacing = data[pos + 27 : pos + 27 + count]
        size = sum(lacing)
        body_at = pos + 27 + count
        pages.append(Page(flags, granule, serial, sequence, lacing, data[body_at : body_at + size]))
        pos = body_at + size
    return pages


def stretch(data: bytes, repeats: int) -> bytes:
    """``data`` with its audio pages played ``repeats`` times (headers once, EOS on the very last page)."""
    pages = parse_pages(data)
    headers = [p for p in pages if p.granule == 0]
    audio = [p for p in pages if p.granule != 0]
    # The last page may end on a trimmed granule; the repeated unit is every audio page but the last
    # (or the only audio page, when a short silent encoding fits in one).
    unit, last = (audio[:-1], audio[-1]) if len(audio) > 1 else (audio, None)
    step = unit[-1].granule - (headers[-1].granule if headers else 0)
    out = list(headers)
    sequence = headers[-1].sequence + 1
    for k in range(repeats):
        for page in unit:
            out.append(replace(page, flags=page.flags & ~0x04, granule=page.granule + k * step, sequence=sequence))
            sequence += 1
    if last is not None:
        out.append(replace(last, granule=last.granule + (repeats - 1) * step, sequence=sequence))
    else:
        out[-1] = replace(out[-1], flags=out[-1].flags | 0x04)
    return b"".join(p.encode() for p in out)


def with_last_granule(data: bytes, granule: int) -> bytes:
    """``data`` whose last page claims ``granule`` samples (a header that lies about the duration)."""
    pages = parse_pages(data)
    pages[-1] = replace(pages[-1], granule=granule)
    return b"".join(p.encode() for p in pages)
