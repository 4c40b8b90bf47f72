"""The half-precision-storage dense layer: same outputs as the trained Dense, half the bytes, survives a save."""

from pathlib import Path

import numpy as np

from services.speech.layers import AttentiveStatsPooling, FrameMask, HalfStoredDense


def test_half_stored_dense_matches_the_dense_it_replaces(tmp_path: Path) -> None:
    import keras

    rng = np.random.default_rng(0)
    inputs = keras.Input(shape=(64,))
    dense = keras.layers.Dense(16, activation="relu", name="dense")
    trained = keras.Model(inputs, dense(inputs))
    dense.set_weights([rng.normal(0, 0.2, (64, 16)).astype("float32"), rng.normal(0, 0.1, 16).astype("float32")])
    half = HalfStoredDense.from_dense(dense)
    assert half.kernel.dtype == "float16"
    x = rng.standard_normal((8, 64)).astype("float32")
    expected = np.asarray(trained(x))
    got = np.asarray(half(x))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-3)

    served = keras.Model(inputs, half(inputs))
    served.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(np.asarray(loaded(x)), got, atol=1e-6)


def test_attentive_pooling_starts_from_mean_and_std_and_ignores_padding(tmp_path: Path) -> None:
    import keras

    rng = np.random.default_rng(1)
    frames = rng.standard_normal((2, 10, 6)).astype("float32")
    frames[1, 7:] = 0.0  # the second window has 7 real frames
    inputs = keras.Input(shape=(None, 6))
    pooling = AttentiveStatsPooling(groups=2, hidden=4)
    model = keras.Model(inputs, pooling(inputs, FrameMask()(inputs)))
    # Zero scorer weights: every real frame weighs the same -> the plain mean and std per group.
    pooling.score.set_weights([np.zeros_like(w) for w in pooling.score.get_weights()])
    out = np.asarray(model(frames))
    assert out.shape == (2, 12)
    for i, n in ((0, 10), (1, 7)):
        real = frames[i, :n].reshape(n, 2, 3)
        expected = np.concatenate([real.mean(0), real.std(0)], axis=-1).reshape(-1)
        np.testing.assert_allclose(out[i], expected, atol=1e-5)

    # Trained scores weigh frames unequally, but padding still counts for nothing.
    pooling.score.set_weights([rng.standard_normal(w.shape).astype("float32") for w in pooling.score.get_weights()])
    weighted = np.asarray(model(frames))
    assert not np.allclose(weighted[0], out[0], atol=1e-3)
    np.testing.assert_allclose(np.asarray(model(frames[1:, :7]))[0], weighted[1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(model(frames[1:, :9]))[0], weighted[1], atol=1e-5)

    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(np.asarray(loaded(frames)), weighted, atol=1e-6)
