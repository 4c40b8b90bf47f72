"""Text-specific input errors; their messages are constants reused by OpenAPI examples and tests."""

from shared.errors import InvalidInput

EMPTY_TEXT = "Text is empty (or only whitespace/control characters)"
TEXT_TOO_LONG = "Text is {length:,} characters long; the limit is {limit:,}"
BATCH_TOO_LARGE = "Batch has {size} texts; the limit is {limit}"
MODEL_NOT_LOADED = "Text model is not loaded: {reason}"


class EmptyText(InvalidInput):
    """Nothing left to classify once whitespace and control characters are removed."""

    code = "empty_text"


class TextTooLong(InvalidInput):
    """The text exceeds ``max_text_chars``."""

    code = "text_too_long"


class BatchTooLarge(InvalidInput):
    """More texts than ``max_batch_size`` in one call."""

    code = "batch_too_large"
