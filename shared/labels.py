"""The seven emotion labels, in canonical (FER2013 index) order."""

from enum import StrEnum
from typing import Final


class Emotion(StrEnum):
    """One of the seven emotions every model predicts."""

    ANGRY = "angry"
    DISGUST = "disgust"
    FEAR = "fear"
    HAPPY = "happy"
    SAD = "sad"
    SURPRISE = "surprise"
    NEUTRAL = "neutral"


#: Label names in canonical order; index i of every probability vector is LABELS[i].
LABELS: Final[tuple[str, ...]] = tuple(e.value for e in Emotion)
NUM_LABELS: Final[int] = len(LABELS)
LABEL_TO_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(LABELS)}


class Modality(StrEnum):
    """An input kind the platform understands."""

    SPEECH = "speech"
    TEXT = "text"
    IMAGE = "image"


MODALITIES: Final[tuple[str, ...]] = tuple(m.value for m in Modality)
