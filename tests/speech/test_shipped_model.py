"""The shipped speech model: loads offline with the verified Whisper encoder, seven probabilities per window."""

import numpy as np

from services.speech.model import load
from services.speech.settings import ARTIFACTS_DIR
from shared.labels import LABELS
from shared.weights import WHISPER_BASE, file_digest
from tests.speech.conftest import voice


def test_shipped_model_runs_on_the_pinned_encoder() -> None:
    model = load(ARTIFACTS_DIR)
    assert "whisper" in model.config.inputs
    assert model.encoder is not None
    assert file_digest(model.encoder.folder / WHISPER_BASE.filename) == (WHISPER_BASE.size, WHISPER_BASE.sha256)
    probabilities = model.predict([voice(3.0, seed=1), voice(1.0, f0=240, seed=2)])
    assert probabilities.shape == (2, len(LABELS))
    assert (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # The head reads the middle blocks' pooled states; the shipped calibrator is loaded and applied.
    assert model.config.encoder is not None and model.config.encoder.layers == (1, 2, 3, 4, 5, 6)
    assert model.calibrator.to_json()["kind"] in ("temperature", "vector")
    # The encoder's weights come from the pinned packages, not the repository.
    # Five 6,144 -> 256 -> 7 heads, about 3.2 MB each with their first layer stored in float16.
    assert (ARTIFACTS_DIR / "speech_emotion.keras").stat().st_size < 25 * 1024 * 1024


def test_after_warmup_no_batch_size_retraces_the_heads() -> None:
    # The heads' call is traced by TensorFlow; warm-up must leave a trace that fits any batch size,
    # or the first request with a new number of windows pays a retrace (hundreds of ms).
    model = load(ARTIFACTS_DIR)
    model.warmup()
    traced = model._call.experimental_get_tracing_count()
    reference = model.predict([voice(3.0, seed=4)])
    batch = model.predict([voice(3.0, seed=4), *(voice(1.5, seed=k) for k in range(4))])
    assert model._call.experimental_get_tracing_count() == traced
    # Batching does not change a window's answer.
    np.testing.assert_allclose(batch[0], reference[0], atol=1e-5)
