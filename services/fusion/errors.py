"""Fusion-specific error messages, reused by the routes, the OpenAPI examples and the tests."""

from typing import Final

#: 422 when the request names no modality at all.
NO_MODALITIES: Final[str] = "Give at least one of speech, text, image"
#: Prefix of the 503 detail while the forest is not loaded.
MODEL_NOT_READY: Final[str] = "Fusion model is not loaded"
