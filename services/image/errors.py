"""Domain errors and the messages they carry (reused in OpenAPI examples and tests)."""

from shared.errors import (
    MODEL_NOT_LOADED,
    CorruptInput,
    ModelNotReady,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
)

MODEL_TITLE = "Face emotion"

NO_FACE_MESSAGE = "No face detected"
NOT_AN_IMAGE = "The upload is not a JPEG, PNG, WebP or BMP image"
CORRUPT_IMAGE = "The image could not be decoded (corrupt or truncated file)"
EMPTY_IMAGE = "The upload is empty"
TOO_MANY_PIXELS = "The image has {pixels:,} pixels; the limit is {limit:,}"
DECOMPRESSION_BOMB = "The image is too large to decode safely (decompression bomb guard; limit {limit:,} pixels)"
MODEL_MISSING = MODEL_NOT_LOADED.format(model=MODEL_TITLE, reason="{reason}")


class InvalidImage(CorruptInput):
    """Bytes that claim an accepted image format but are empty or cannot be decoded (422 corrupt_input)."""


class UnsupportedImage(UnsupportedMediaType):
    """Bytes that are not one of the accepted image formats (415, as at the speech service and the gateway)."""


class FaceModelNotReady(ModelNotReady):
    """The weights are missing or failed to load (the CLI's error; the service uses the shared dependency)."""


class ImageTooLarge(PayloadTooLarge):
    """An image whose pixel count exceeds the configured limit."""

    code = "image_too_large"


TOO_MUCH_MEMORY = "The image would need {need:,} bytes to decode ({mode}, {pixels:,} pixels); the limit is {limit:,}"
BATCH_TOO_MUCH_MEMORY = "The batch would need {need:,} bytes to decode; the limit per request is {limit:,}"
DECODER_BUSY = "The image decoder is busy with other large images; retry shortly"


class DecoderBusy(ServiceError):
    """The process-wide decode memory budget stayed taken for too long."""

    status_code = 503
    code = "decoder_busy"
