"""Keras layers of the served speech network (imported when a model is loaded, never at service start)."""

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="emotion_speech")
class HalfStoredDense(keras.layers.Layer):  # type: ignore[misc]  # keras ships no type hints
    """A dense layer whose kernel is stored in float16 and used in float32.

    The heads' first layers (6,144 x 256 each) are almost all of the model file; half-precision
    storage halves it, while the product and its sum stay in float32 (the kernel is cast, not the
    input), so outputs move by about 1e-4 (``tests/speech/test_layers.py``).
    """

    def __init__(self, units: int, activation: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], self.units), dtype="float16", initializer="zeros", trainable=False
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros", trainable=False)

    def call(self, inputs: Any) -> Any:
        return self.activation(keras.ops.matmul(inputs, keras.ops.cast(self.kernel, inputs.dtype)) + self.bias)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "activation": keras.activations.serialize(self.activation)}

    @classmethod
    def from_dense(cls, dense: Any) -> "HalfStoredDense":
        """The same layer as a trained ``keras.layers.Dense`` (kernel rounded to float16)."""
        layer = cls(dense.units, activation=keras.activations.serialize(dense.activation), name=dense.name)
        layer.build((None, dense.kernel.shape[0]))
        kernel, bias = dense.get_weights()
        layer.set_weights([kernel.astype("float16"), bias])
        return layer
