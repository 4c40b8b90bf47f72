"""The shipped text models load, predict sensibly and handle any Unicode."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from services.text.model import (
    ENCODER_FILES_KEY,
    PACKAGED_ENCODER,
    ArtifactError,
    TextModel,
    clean_text,
    encoder_files,
    load,
    resolve_encoder,
    verify_encoder,
    word_tokens,
)
from services.text.settings import ARTIFACTS_DIR
from shared.labels import LABEL_TO_INDEX, LABELS

TEXTS = [
    "I am so happy today!",
    "I am terrified of what will happen tomorrow, I can't stop shaking.",
    "This is disgusting, it makes me want to throw up.",
    "He lied to me again and I am furious.",
    "My grandmother passed away last night and I miss her so much.",
    "OK, the meeting is at 3pm in room 4.",
]


def test_minilm_happy_and_probabilities(minilm: TextModel) -> None:
    probs = minilm.predict(["I am so happy today!"])
    assert probs.shape == (1, len(LABELS))
    assert LABELS[int(probs[0].argmax())] == "happy"
    assert probs[0].sum() == pytest.approx(1.0, abs=1e-6)
    assert (probs >= 0).all()


def test_minilm_predicts_the_obvious_emotions(minilm: TextModel) -> None:
    predicted = [LABELS[i] for i in minilm.predict(TEXTS).argmax(axis=1)]
    assert predicted[0] == "happy"
    assert predicted[1] == "fear"
    assert predicted[3] == "angry"
    assert predicted[4] == "sad"
    # At least 5 of these 6 clear-cut sentences right (disgust/neutral are the hard classes).
    expected = ["happy", "fear", "disgust", "angry", "sad", "neutral"]
    assert sum(p == e for p, e in zip(predicted, expected, strict=True)) >= 5


def test_minilm_batch_equals_single(minilm: TextModel) -> None:
    batch = minilm.predict(TEXTS)
    single = np.vstack([minilm.predict([t]) for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=1e-4)


def test_minilm_truncates_long_text_to_its_head(minilm: TextModel) -> None:
    head = "I am so happy today! "
    long_text = head + "the table is made of wood " * 200
    assert minilm.truncated([long_text, head]) == [True, False]
    probs = minilm.predict([long_text])
    assert probs.shape == (1, 7)
    assert probs.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "text",
    [
        "I love this 😍🎉",
        "أنا سعيد جدا اليوم",  # Arabic, right-to-left
        "\u202eevil bidi override\u202c",
        "nul\x00inside\x00text",
        "lone surrogate \ud800 here",
        "ｆｕｌｌｗｉｄｔｈ and combining e\u0301",
        "日本語のテキスト",
    ],
)
def test_any_unicode_is_handled(minilm: TextModel, text: str) -> None:
    probs = minilm.predict([text])
    assert probs.shape == (1, 7)
    assert np.isfinite(probs).all()
    assert probs.sum() == pytest.approx(1.0)


def test_clean_text_removes_controls_and_surrogates() -> None:
    assert clean_text("a\x00b\u200bc \n\t d") == "a b c d"
    assert clean_text("x \ud800 y") == "x \ufffd y"
    assert clean_text("e\u0301") == "\u00e9"
    assert clean_text(" \x00 \u200b ") == ""


def test_word_tokens() -> None:
    assert word_tokens("I can't BELIEVE it!! 😍") == ["i", "can't", "believe", "it", "!", "!", "😍"]


def test_bilstm_loads_and_predicts(bilstm: TextModel) -> None:
    probs = bilstm.predict(["I am so happy today!", "I am so sad and lonely."])
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs[0].argmax() == LABEL_TO_INDEX["happy"]
    assert probs[1].argmax() == LABEL_TO_INDEX["sad"]
    assert bilstm.truncated(["word " * 500, "short"]) == [True, False]


def test_missing_model_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ArtifactError, match="config.json is missing"):
        load(tmp_path)


def test_incomplete_model_is_a_clear_error(tmp_path) -> None:
    config = json.loads((ARTIFACTS_DIR / "minilm" / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="encoder_delta.safetensors is missing"):
        load(tmp_path)


def test_wrong_labels_are_refused(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"kind": "minilm", "labels": ["a", "b"]}))
    with pytest.raises(ArtifactError, match="labels"):
        load(tmp_path)


def encoder_copy(tmp_path: Path) -> Path:
    """A folder of symlinks to the packaged MiniLM's files (its own path, so files can be swapped)."""
    source = Path(resolve_encoder(PACKAGED_ENCODER))
    target = tmp_path / "encoder"
    for file in source.rglob("*"):
        if file.is_file():
            (target / file.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (target / file.relative_to(source)).symlink_to(file)
    return target


def test_the_shipped_fingerprint_covers_every_file_the_encoder_loads() -> None:
    config = json.loads((ARTIFACTS_DIR / "minilm" / "config.json").read_text())
    recorded = config[ENCODER_FILES_KEY]
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"} <= set(recorded)
    verify_encoder(PACKAGED_ENCODER, recorded)  # the installed package is the one the model was trained on


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda d: (d / "tokenizer_config.json").unlink() or (d / "tokenizer_config.json").write_text("{}"), "changed"),
        (lambda d: (d / "vocab.txt").unlink(), "missing: vocab.txt"),
        (lambda d: (d / "extra_module.py").write_text("print('hi')"), "unexpected: extra_module.py"),
    ],
)
def test_any_difference_in_the_base_encoder_is_refused(tmp_path: Path, tamper, message: str) -> None:
    encoder = encoder_copy(tmp_path)
    recorded = encoder_files(str(encoder))
    verify_encoder(str(encoder), recorded)
    tamper(encoder)
    with pytest.raises(ArtifactError, match=message):
        verify_encoder(str(encoder), recorded)


@pytest.mark.parametrize("fingerprint", [None, {}, "53aa5117"])
def test_a_model_without_the_encoder_fingerprint_is_not_loaded(tmp_path: Path, fingerprint: object) -> None:
    folder = tmp_path / "minilm"
    shutil.copytree(ARTIFACTS_DIR / "minilm", folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop(ENCODER_FILES_KEY)
    if fingerprint is not None:
        config[ENCODER_FILES_KEY] = fingerprint
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="no encoder_files fingerprint"):
        load(folder, runtime="torch")


def test_a_model_over_a_different_encoder_is_not_loaded(tmp_path: Path) -> None:
    encoder = encoder_copy(tmp_path)
    (encoder / "config.json").unlink()
    (encoder / "config.json").write_text((Path(resolve_encoder(PACKAGED_ENCODER)) / "config.json").read_text() + " ")
    folder = tmp_path / "minilm"
    shutil.copytree(ARTIFACTS_DIR / "minilm", folder)
    config = json.loads((folder / "config.json").read_text())
    config["encoder"] = str(encoder)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match=r"not the one the model was trained on \(changed: config.json\)"):
        load(folder, runtime="torch")
