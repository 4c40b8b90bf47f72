"""Transcription-service errors and the detail strings reused in OpenAPI and tests."""

from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

UNSUPPORTED_DETAIL = "Unsupported audio: send WAV, FLAC, OGG/Vorbis or MP3 (recognised from the content)"
CORRUPT_DETAIL = "The audio could not be decoded ({reason}); the file looks corrupt or truncated"
EMPTY_DETAIL = "The audio is empty"
TOO_LONG_DETAIL = "The audio lasts {duration:.1f} s; the limit is {limit:.0f} s"
MODEL_MISSING_DETAIL = "Transcription model is not loaded: {reason}"


class EmptyAudio(InvalidInput):
    """No bytes to decode."""

    code = "empty_audio"


class CorruptAudio(InvalidInput):
    """The bytes claim a supported container but do not decode."""

    code = "corrupt_audio"


class UnsupportedAudio(UnsupportedMediaType):
    """Not one of the accepted audio containers."""


class AudioTooLong(PayloadTooLarge):
    """Longer than the configured maximum duration."""

    code = "audio_too_long"
