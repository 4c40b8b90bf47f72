"""The training code on a tiny synthetic set: features -> a few epochs -> artefacts the service loads."""

from pathlib import Path

import numpy as np

from services.speech.audio import SegmentationParams
from services.speech.features import FeatureParams, LogMelParams, feature_size
from services.speech.model import MODEL_FILE, ModelConfig, load
from shared.labels import LABEL_TO_INDEX, LABELS
from tests.speech.conftest import voice, wav_bytes
from training.speech.data import Clip, featurise
from training.speech.train import HyperParams, class_weights, clip_probabilities, fit, spec_augment


def test_train_a_few_steps_and_load_as_the_service(tmp_path: Path) -> None:
    clips = []
    for i in range(8):
        # "sad": low, "happy": high-pitched voice.
        label = "sad" if i % 2 == 0 else "happy"
        path = tmp_path / f"{i}.wav"
        path.write_bytes(wav_bytes(voice(1.2 + 0.1 * i, f0=110 if label == "sad" else 260, seed=i)))
        clips.append(Clip(path=str(path), label=LABEL_TO_INDEX[label], speaker=f"s{i % 2}", dataset="synthetic"))
    params = FeatureParams()
    features = featurise(clips, feature_params=params, segmentation=SegmentationParams())
    assert features.x.shape == (8, feature_size(params))
    assert np.isfinite(features.x).all()

    y = np.array([clips[i].label for i in features.clip])
    hp = HyperParams(hidden=(16,), batch_size=4, members=2)
    model = fit(features.x, y, np.ones(len(y), dtype=np.float32), hp, epochs=3)
    model.save(tmp_path / MODEL_FILE)
    ModelConfig(
        name="tiny", version="test", labels=LABELS, features=params, segmentation=SegmentationParams(), metrics={}
    ).save(tmp_path)

    loaded = load(tmp_path)
    assert (loaded.name, loaded.version) == ("tiny", "test")
    probabilities = loaded.predict([voice(1.5, f0=120, seed=99), voice(2.0, f0=250, seed=98)])
    assert probabilities.shape == (2, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # Same features, same network: the loaded model reproduces the trained one.
    np.testing.assert_allclose(
        loaded.predict_features(features.x), np.asarray(model(features.x, training=False)), atol=1e-5
    )


def test_clip_probabilities_weight_segments_by_duration() -> None:
    probs = np.zeros((3, 7))
    probs[0, 0] = probs[1, 3] = probs[2, 3] = 1.0
    out = clip_probabilities(probs, np.array([0, 0, 1]), np.array([3.0, 1.0, 2.0]), 2)
    np.testing.assert_allclose(out[0, [0, 3]], [0.75, 0.25])
    np.testing.assert_allclose(out[1, 3], 1.0)


def test_class_weights_balance_the_classes() -> None:
    weights = class_weights(np.array([6, 6, 6, 0]))
    assert weights[6] * 3 == weights[0] * 1
    assert weights[1] == 0.0


def test_cnn_kind_trains_and_loads_with_logmel_patches(tmp_path: Path) -> None:
    clips = []
    for i in range(6):
        path = tmp_path / f"{i}.wav"
        path.write_bytes(wav_bytes(voice(1.0 + 0.3 * i, f0=110 + 30 * i, seed=i)))
        clips.append(Clip(path=str(path), label=i % 3, speaker="s", dataset="synthetic"))
    logmel = LogMelParams(frames=60)
    features = featurise(clips, feature_params=FeatureParams(), segmentation=SegmentationParams(), logmel=logmel)
    assert features.x.shape == (6, logmel.n_mels, 60)
    y = np.array([clips[i].label for i in features.clip])
    model = fit(
        features.x, y, np.ones(len(y), dtype=np.float32), HyperParams(conv_filters=(4, 8), batch_size=3), epochs=2
    )
    model.save(tmp_path / MODEL_FILE)
    ModelConfig(
        name="tiny-cnn",
        version="test",
        labels=LABELS,
        features=FeatureParams(),
        segmentation=SegmentationParams(),
        metrics={},
        logmel=logmel,
        inputs=("logmel",),
    ).save(tmp_path)
    loaded = load(tmp_path)
    probabilities = loaded.predict([voice(0.8, seed=5), voice(2.0, seed=6)])
    assert probabilities.shape == (2, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_spec_augment_masks_without_changing_shape() -> None:
    x = np.ones((4, 48, 150), dtype=np.float32)
    out = spec_augment(x, np.random.default_rng(0), max_f=8, max_t=20, shift=0)
    assert out.shape == x.shape
    assert (out == 0).any() and (out == 1).any()
    assert (x == 1).all()
