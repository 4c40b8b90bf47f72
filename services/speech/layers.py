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


@keras.saving.register_keras_serializable(package="emotion_speech")
class FrameMask(keras.layers.Layer):  # type: ignore[misc]
    """1.0 for real frames, 0.0 for padding: encoder states are never exactly zero, padding always is."""

    def call(self, frames: Any) -> Any:
        return keras.ops.cast(keras.ops.any(keras.ops.not_equal(frames, 0), axis=-1), frames.dtype)


@keras.saving.register_keras_serializable(package="emotion_speech")
class AttentiveStatsPooling(keras.layers.Layer):  # type: ignore[misc]
    """Attention-weighted mean and standard deviation over time (Okabe et al., 2018), per feature group.

    The frame vector (``groups`` x d, e.g. the six encoder blocks' 512 states side by side) scores each
    frame once per group through a small tanh layer; each group's states are then pooled with its own
    softmax weights over the real (unmasked) frames. Uniform weights give the plain mean and std, so
    training starts from the pooled recipe and learns which moments of a window carry the emotion.
    """

    def __init__(self, groups: int, hidden: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.groups = groups
        self.hidden = hidden
        self.score_hidden = keras.layers.Dense(hidden, activation="tanh", name="score_hidden")
        self.score = keras.layers.Dense(groups, name="score")

    def build(self, frames_shape: tuple[int | None, ...], mask_shape: Any = None) -> None:  # noqa: ARG002  # keras's signature
        self.score_hidden.build(frames_shape)
        self.score.build((*frames_shape[:-1], self.hidden))

    def call(self, frames: Any, mask: Any) -> Any:
        ops = keras.ops
        logits = self.score(self.score_hidden(frames))  # (batch, time, groups)
        logits = logits + (1.0 - mask[:, :, None]) * -1e9
        weights = ops.softmax(logits, axis=1)[..., None]  # (batch, time, groups, 1)
        shape = ops.shape(frames)
        grouped = ops.reshape(frames, (shape[0], shape[1], self.groups, -1))
        mean = ops.sum(weights * grouped, axis=1)
        var = ops.sum(weights * ops.square(grouped), axis=1) - ops.square(mean)
        std = ops.sqrt(ops.maximum(var, 1e-6))
        return ops.reshape(ops.concatenate([mean, std], axis=-1), (shape[0], -1))

    def compute_output_shape(self, frames_shape: tuple[Any, ...], mask_shape: Any = None) -> tuple[Any, ...]:  # noqa: ARG002
        return (frames_shape[0], 2 * frames_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "groups": self.groups, "hidden": self.hidden}
