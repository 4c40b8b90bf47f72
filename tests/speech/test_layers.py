"""The half-precision-storage dense layer: same outputs as the trained Dense, half the bytes, survives a save."""

from pathlib import Path

import numpy as np

from services.speech.layers import HalfStoredDense


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
