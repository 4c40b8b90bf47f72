"""The Whisper model itself: it reads the committed spoken fixture word for word, and cuts long segments."""

import re

import numpy as np
import pytest

from services.asr.audio import decode
from services.asr.model import SAMPLE_RATE, AsrModel, Segment, split_long


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", "", text.lower()).split()


def test_transcribes_the_spoken_fixture_word_for_word(whisper: AsrModel, spoken: bytes) -> None:
    (transcript,) = whisper.transcribe([decode(spoken, max_duration_s=30)])
    assert transcript.language == "en"
    assert words(transcript.text) == ["kids", "are", "talking", "by", "the", "door"]
    assert transcript.duration_s == pytest.approx(34830 / SAMPLE_RATE, abs=0.05)
    first = transcript.segments[0]
    assert 0.0 <= first.start < first.end <= transcript.duration_s + 1e-6


def test_a_batch_gives_one_transcript_per_clip_and_empty_audio_gives_no_segments(
    whisper: AsrModel, spoken: bytes
) -> None:
    clip = decode(spoken, max_duration_s=30)
    empty, speech = whisper.transcribe([np.zeros(0, np.float32), clip])
    assert empty.segments == [] and empty.text == ""
    assert "door" in words(speech.text)


def test_name_and_version_say_what_runs(whisper: AsrModel) -> None:
    assert whisper.name == "whisper-base-ct2"
    assert whisper.version == "1.0.0-int8"


def test_split_long_cuts_at_words_with_proportional_times() -> None:
    segment = Segment(10.0, 30.0, "one two three four five six seven eight")
    pieces = split_long(segment, 8.0)
    assert len(pieces) == 3
    assert " ".join(p.text for p in pieces) == segment.text
    assert pieces[0].start == 10.0 and pieces[-1].end == 30.0
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    assert all(p.end - p.start <= 8.0 + 1e-6 for p in pieces)


def test_split_long_keeps_short_or_single_word_segments() -> None:
    short = Segment(0.0, 3.0, "hello there")
    assert split_long(short, 8.0) == [short]
    one_word = Segment(0.0, 20.0, "hmmmmmmm")
    assert split_long(one_word, 8.0) == [one_word]
