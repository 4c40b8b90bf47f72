"""Turning raw request text into model input, and model output into responses (shared with the CLI)."""

import re
from collections.abc import Sequence

from services.text.errors import EMPTY_TEXT, LONE_SURROGATE, TEXT_TOO_LONG, EmptyText, InvalidText, TextTooLong
from services.text.model import TextModel, clean_text
from services.text.schemas import TextPrediction
from shared.labels import LABELS
from shared.schemas import ModelInfo, probabilities_from_vector

_SURROGATE = re.compile("[\ud800-\udfff]")


def prepare_text(text: str, *, max_chars: int, where: str = "") -> str:
    """Reject over-long, non-Unicode or empty text; return it cleaned (see :func:`services.text.model.clean_text`)."""
    prefix = f"{where}: " if where else ""
    if len(text) > max_chars:
        raise TextTooLong(prefix + TEXT_TOO_LONG.format(length=len(text), limit=max_chars))
    if surrogate := _SURROGATE.search(text):
        raise InvalidText(prefix + LONE_SURROGATE.format(position=surrogate.start()))
    cleaned = clean_text(text)
    if not cleaned:
        raise EmptyText(prefix + EMPTY_TEXT)
    return cleaned


def predict_texts(model: TextModel, texts: Sequence[str]) -> list[TextPrediction]:
    """Run the model on prepared texts (blocking: call it from a worker thread in the service)."""
    probabilities = model.predict(texts)
    truncated = model.truncated(texts)
    info = ModelInfo(name=model.name, version=model.version)
    return [
        TextPrediction(
            label=LABELS[int(row.argmax())],
            probabilities=probabilities_from_vector(row.tolist()),
            model=info,
            truncated=cut,
        )
        for row, cut in zip(probabilities, truncated, strict=True)
    ]
