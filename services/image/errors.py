"""Domain errors and the messages they carry (reused in OpenAPI examples and tests)."""

from shared.errors import InvalidInput, ModelNotReady, PayloadTooLarge

NO_FACE_MESSAGE = "No face detected"
NOT_AN_IMAGE = "The upload is not a JPEG, PNG, WebP or BMP image"
CORRUPT_IMAGE = "The image could not be decoded (corrupt or truncated file)"
EMPTY_IMAGE = "The upload is empty"
TOO_MANY_PIXELS = "The image has {pixels:,} pixels; the limit is {limit:,}"
DECOMPRESSION_BOMB = "The image is too large to decode safely (decompression bomb guard; limit {limit:,} pixels)"
MODEL_MISSING = "Face emotion model is not loaded: {reason}"
BATCH_TOO_LARGE = "At most {limit} images per batch (got {count})"
BATCH_EMPTY = "Send at least one `image` part"


class InvalidImage(InvalidInput):
    """Bytes that are not an accepted image, or that cannot be decoded."""

    code = "invalid_image"


class ImageTooLarge(PayloadTooLarge):
    """An image whose pixel count exceeds the configured limit."""

    code = "image_too_large"


class FaceModelNotReady(ModelNotReady):
    """The weights are missing or failed to load."""
