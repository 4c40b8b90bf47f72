"""Small input files made on the fly for the browser tests."""

import io
import math
import struct
import wave

from PIL import Image


def png(width: int = 240, height: int = 180, grey: int = 200) -> bytes:
    """A flat grey PNG (the stub finds a face in it unless it is black)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (grey, grey, grey)).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(seconds: float = 2.5, amplitude: float = 0.3, rate: int = 16000) -> bytes:
    """A 220 Hz tone as 16-bit mono WAV (silence when amplitude is 0)."""
    frames = b"".join(
        struct.pack("<h", int(amplitude * 32767 * math.sin(2 * math.pi * 220 * i / rate)))
        for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def file_payload(name: str, mime: str, data: bytes) -> dict[str, object]:
    """What Playwright's set_input_files takes for an in-memory file."""
    return {"name": name, "mimeType": mime, "buffer": data}
