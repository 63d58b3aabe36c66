"""Export a trained model as a SavedModel with serving signatures (TF Serving, TFMA, Python).

Signatures:
- `serving_default`: serialized tf.Examples (flat int64 `image`, optional `label`) -> reconstruction,
  latent code, per-image PSNR and MSE. What TFMA and TF Serving's Example-based APIs call.
- `reconstruct`: float32 images in [-1, 1], shape (batch, H, W, C) -> the same outputs.
- `reconstruct_uint8`: uint8 images in [0, 255] -> the same outputs.
The per-image PSNR is the anomaly score and the figure the Evaluator averages: one definition
(`sparse_ae.metrics`) for training, serving and evaluation.

Inputs are checked in the graph, so a wrong input fails with InvalidArgumentError and a message
saying what is allowed instead of returning garbage: images of another shape (a signature call
does not check the shape it declares), float images that are not finite or outside [-1, 1], and
Example pixels outside 0..255 (a cast to uint8 would wrap them). A wrong dtype is refused by the
signature itself. The image inputs declare rank 4 with free sizes: a fully static shape would
let TensorFlow fold the size check away.
"""
from __future__ import annotations

from typing import Callable, Dict

import tensorflow as tf

from sparse_ae.config import SparseAEConfig
from sparse_ae.data import IMAGE_KEY, example_feature_spec, scale_images
from sparse_ae.metrics import mse_per_image, psnr_from_mse
from sparse_ae.model import SparseAutoencoder

SERVING_DEFAULT = "serving_default"
RECONSTRUCT = "reconstruct"
RECONSTRUCT_UINT8 = "reconstruct_uint8"
PSNR_OUTPUT = "psnr"


class ServingModule(tf.Module):
    """Holds the model's variables and the signature functions."""

    def __init__(self, model: SparseAutoencoder):
        super().__init__(name="sparse_autoencoder_serving")
        self.encoder = model.encoder
        self.decoder = model.decoder
        self.config: SparseAEConfig = model.config
        images = [None] * (len(self.config.image_shape) + 1)  # sizes checked in _checked_shape
        self.serve_examples = tf.function(
            self._serve_examples, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        self.reconstruct = tf.function(
            self._reconstruct, input_signature=[tf.TensorSpec(images, tf.float32, name="images")])
        self.reconstruct_uint8 = tf.function(
            self._reconstruct_uint8, input_signature=[tf.TensorSpec(images, tf.uint8, name="images")])

    def _checked_shape(self, images: tf.Tensor, signature: str) -> tf.Tensor:
        """images with the static shape (batch, H, W, C), after a runtime check that they have it."""
        expected = ",".join(str(size) for size in self.config.image_shape)
        actual = tf.strings.reduce_join(tf.strings.as_string(tf.shape(images)[1:]), separator=",")
        check = tf.debugging.Assert(tf.equal(actual, expected), [
            f"{signature}: images must have shape (batch, {expected.replace(',', ', ')}); got images of shape", actual])
        with tf.control_dependencies([check]):
            return tf.ensure_shape(tf.identity(images), [None, *self.config.image_shape])

    def _reconstruct(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        images = self._checked_shape(images, RECONSTRUCT)
        # One pass: the largest magnitude is NaN or infinite when any value is (reduce_max propagates NaN).
        inside = tf.reduce_max(tf.abs(images)) <= 1.0

        def explain():
            finite = tf.boolean_mask(images, tf.math.is_finite(images))
            return [f"{RECONSTRUCT}: images must be finite and lie in [-1, 1] (uint8 pixels: use {RECONSTRUCT_UINT8}); "
                    f"got", tf.size(images) - tf.size(finite), "NaN or infinite values, finite ones from",
                    tf.reduce_min(finite), "to", tf.reduce_max(finite)]
        with tf.control_dependencies([_require(inside, explain)]):
            return self._outputs(tf.identity(images))

    def _outputs(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        latent = self.encoder(images, training=False)
        reconstruction = self.decoder(latent, training=False)
        mse = mse_per_image(images, reconstruction)
        return {"reconstruction": reconstruction, "latent": latent, "mse": mse, PSNR_OUTPUT: psnr_from_mse(mse)}

    def _reconstruct_uint8(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._outputs(scale_images(self._checked_shape(images, RECONSTRUCT_UINT8)))

    def _serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        pixels = tf.io.parse_example(examples, example_feature_spec(self.config))[IMAGE_KEY]
        inside = tf.reduce_all(tf.logical_and(pixels >= 0, pixels <= 255))

        def explain():
            return [f"{SERVING_DEFAULT}: {IMAGE_KEY} pixels must be integers in [0, 255]; got values from",
                    tf.reduce_min(pixels), "to", tf.reduce_max(pixels)]
        with tf.control_dependencies([_require(inside, explain)]):
            images = tf.reshape(tf.cast(pixels, tf.uint8), (-1, *self.config.image_shape))
        return self._outputs(scale_images(images))


def _require(ok: tf.Tensor, explain: Callable[[], list]) -> tf.Tensor:
    """ok, after an assertion that fails with explain()'s message; the message's figures are
    computed only for a refused input (a plain tf.debugging.Assert computes its data every time)."""
    def refuse() -> tf.Tensor:
        with tf.control_dependencies([tf.debugging.Assert(ok, explain())]):
            return tf.identity(ok)
    return tf.cond(ok, lambda: ok, refuse)


def export_saved_model(model: SparseAutoencoder, export_dir: str) -> str:
    """Write the SavedModel with the three signatures to export_dir; returns export_dir."""
    module = ServingModule(model)
    signatures = {
        SERVING_DEFAULT: module.serve_examples.get_concrete_function(),
        RECONSTRUCT: module.reconstruct.get_concrete_function(),
        RECONSTRUCT_UINT8: module.reconstruct_uint8.get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir
