"""Request and response bodies of the text service."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import EXAMPLE_PROBABILITIES, Prediction

_EXAMPLE_MODEL: dict[str, Any] = {"name": "minilm-l6-emotion", "version": "2026.11.25"}
#: Hard ceiling on a batch, checked by the schema before any item is validated (a 1.5-million-item
#: list is refused at once instead of being validated item by item); MAX_BATCH_SIZE is the real limit.
MAX_BATCH_ITEMS = 1024


class TextRequest(BaseModel):
    """One text to classify."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "I am so happy today!"}]})

    text: str = Field(description="Any Unicode text; longer than the model window is cut to its head.")


class BatchTextRequest(BaseModel):
    """Several texts to classify in one model call."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"texts": ["I am so happy today!", "This is disgusting."]}]},
    )

    texts: list[str] = Field(
        min_length=1,
        max_length=MAX_BATCH_ITEMS,
        description=f"At most MAX_BATCH_SIZE texts (default 32; never more than {MAX_BATCH_ITEMS}).",
    )


class TextPrediction(Prediction):
    """A text's prediction; ``truncated`` says whether only its head fitted the model window."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "label": "happy",
                    "probabilities": EXAMPLE_PROBABILITIES,
                    "model": _EXAMPLE_MODEL,
                    "truncated": False,
                }
            ]
        }
    )

    truncated: bool = Field(description="True if the text was longer than the model window.")


class BatchTextResponse(BaseModel):
    """One prediction per input text, in input order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "label": "happy",
                            "probabilities": EXAMPLE_PROBABILITIES,
                            "model": _EXAMPLE_MODEL,
                            "truncated": False,
                        }
                    ]
                }
            ]
        }
    )

    results: list[TextPrediction]
