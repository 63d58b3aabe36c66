"""PSNR for images scaled to [-1, 1]: one definition for training, serving and evaluation."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

# Images live in [-1, 1], so the peak-to-peak signal range is 2.
MAX_VAL = 2.0
# Floor on the per-image MSE so a perfect reconstruction gives a finite PSNR (100 dB + ...).
MIN_MSE = 1e-10


def mse_per_image(targets: tf.Tensor, reconstructions: tf.Tensor) -> tf.Tensor:
    """Mean squared error of each image over all its pixels, shape (batch,)."""
    targets = tf.convert_to_tensor(targets)
    reconstructions = tf.cast(reconstructions, targets.dtype)
    squared = tf.math.squared_difference(targets, reconstructions)
    return tf.reduce_mean(tf.reshape(squared, [tf.shape(squared)[0], -1]), axis=1)


def psnr_from_mse(mse: tf.Tensor, max_val: float = MAX_VAL) -> tf.Tensor:
    """Peak signal-to-noise ratio in dB from a per-image MSE."""
    mse = tf.maximum(mse, MIN_MSE)
    return 10.0 * tf.math.log(tf.cast(max_val, mse.dtype) ** 2 / mse) / tf.math.log(tf.constant(10.0, mse.dtype))


def psnr_per_image(targets: tf.Tensor, reconstructions: tf.Tensor, max_val: float = MAX_VAL) -> tf.Tensor:
    """PSNR in dB of each image, shape (batch,). Higher is better."""
    return psnr_from_mse(mse_per_image(targets, reconstructions), max_val)


@keras.utils.register_keras_serializable(package="sparse_ae")
class PSNR(keras.metrics.Mean):
    """Mean over images of the per-image PSNR (dB), as a serialisable Keras metric."""

    def __init__(self, name: str = "psnr", max_val: float = MAX_VAL, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.max_val = max_val

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(psnr_per_image(y_true, y_pred, self.max_val), sample_weight)

    def update_from_mse(self, mse: tf.Tensor, sample_weight=None):
        """Update from per-image MSEs already computed (saves recomputing the squared error)."""
        return super().update_state(psnr_from_mse(mse, self.max_val), sample_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_val": self.max_val}
