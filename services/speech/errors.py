"""Speech-specific domain errors and the detail strings reused in OpenAPI and tests."""

from shared.errors import MODEL_NOT_LOADED, CorruptInput, InvalidInput, PayloadTooLarge, UnsupportedMediaType

MODEL_TITLE = "Speech"

UNSUPPORTED_DETAIL = "Unsupported audio type{found}: send WAV, FLAC, OGG/Vorbis or MP3"
CORRUPT_DETAIL = "The audio could not be decoded ({reason}); the file looks corrupt or truncated"
EMPTY_DETAIL = "The audio is empty: no samples to analyse"
SILENT_DETAIL = "No speech found: the audio is silent or too quiet to analyse"
TOO_LONG_DETAIL = "The audio lasts {duration:.1f} s; the limit is {limit:.0f} s"
MODEL_MISSING_DETAIL = MODEL_NOT_LOADED.format(model=MODEL_TITLE, reason="{reason}")


class NoSpeech(InvalidInput):
    """Empty or silent audio: nothing to classify, so no guess is made."""

    code = "no_speech"


class CorruptAudio(CorruptInput):
    """The bytes claim a supported format but do not decode (the shared ``corrupt_input`` code)."""


class UnsupportedAudio(UnsupportedMediaType):
    """The bytes are not one of the accepted audio formats."""


class AudioTooLong(PayloadTooLarge):
    """The clip is longer than the configured maximum duration."""

    code = "audio_too_long"


TOO_MANY_CHANNELS_DETAIL = "The audio has {channels} channels; at most {limit} are accepted"
SAMPLE_RATE_DETAIL = "The audio's sample rate {rate} Hz is outside the accepted {low}-{high} Hz"
TOO_MANY_SAMPLES_DETAIL = (
    "The audio would decode to {samples:,} samples (channels x rate x duration); the limit is {limit:,}"
)


class UnsupportedLayout(InvalidInput):
    """Too many channels or an absurd sample rate, refused from the header before decoding."""

    code = "unsupported_audio_layout"


class AudioTooBig(PayloadTooLarge):
    """Channels x frames from the header exceed the decode budget."""

    code = "audio_too_large"


BATCH_TOO_LONG_DETAIL = "The batch's audio lasts {duration:.1f} s in total; the limit per request is {limit:.0f} s"
