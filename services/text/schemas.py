"""Request and response bodies of the text service."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import EXAMPLE_PROBABILITIES, Prediction

_EXAMPLE_MODEL: dict[str, Any] = {"name": "minilm-l6-emotion", "version": "2026.11.25"}


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

    texts: list[str] = Field(min_length=1, description="At most MAX_BATCH_SIZE texts (default 32).")


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
