"""Speech-specific domain errors and the detail strings reused in OpenAPI and tests."""

from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

UNSUPPORTED_DETAIL = "Unsupported audio type{found}: send WAV, FLAC, OGG/Vorbis or MP3"
CORRUPT_DETAIL = "The audio could not be decoded ({reason}); the file looks corrupt or truncated"
EMPTY_DETAIL = "The audio is empty: no samples to analyse"
SILENT_DETAIL = "No speech found: the audio is silent or too quiet to analyse"
TOO_LONG_DETAIL = "The audio lasts {duration:.1f} s; the limit is {limit:.0f} s"
MODEL_MISSING_DETAIL = "Speech model is not loaded: {reason}"


class NoSpeech(InvalidInput):
    """Empty or silent audio: nothing to classify, so no guess is made."""

    code = "no_speech"


class CorruptAudio(InvalidInput):
    """The bytes claim a supported format but do not decode."""

    code = "corrupt_audio"


class UnsupportedAudio(UnsupportedMediaType):
    """The bytes are not one of the accepted audio formats."""


class AudioTooLong(PayloadTooLarge):
    """The clip is longer than the configured maximum duration."""

    code = "audio_too_long"
