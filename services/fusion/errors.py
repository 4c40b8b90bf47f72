"""Fusion-specific error messages, reused by the routes, the OpenAPI examples and the tests."""

from typing import Final

from shared.errors import MODEL_NOT_LOADED as _MODEL_NOT_LOADED

MODEL_TITLE: Final = "Fusion"
#: 422 when the request names no modality at all.
NO_MODALITIES: Final = "Give at least one of speech, text, image"
#: Prefix of the 503 detail while the forest is not loaded.
MODEL_NOT_READY: Final = _MODEL_NOT_LOADED.split(":", 1)[0].format(model=MODEL_TITLE)
