"""Text-specific input errors; their messages are constants reused by OpenAPI examples and tests."""

from shared.errors import MODEL_NOT_LOADED as _MODEL_NOT_LOADED
from shared.errors import InvalidInput

MODEL_TITLE = "Text"
EMPTY_TEXT = "Text is empty (or only whitespace/control characters)"
TEXT_TOO_LONG = "Text is {length:,} characters long; the limit is {limit:,}"
LONE_SURROGATE = "Text contains a lone UTF-16 surrogate at position {position}: it is not valid Unicode"
MODEL_NOT_LOADED = _MODEL_NOT_LOADED.format(model=MODEL_TITLE, reason="{reason}")


class EmptyText(InvalidInput):
    """Nothing left to classify once whitespace and control characters are removed."""

    code = "empty_text"


class TextTooLong(InvalidInput):
    """The text exceeds ``max_text_chars``."""

    code = "text_too_long"


class InvalidText(InvalidInput):
    """The string is not valid Unicode (a lone surrogate, which JSON can carry but UTF-8 cannot)."""

    code = "invalid_text"
