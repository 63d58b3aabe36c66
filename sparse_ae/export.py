"""Export a trained model as a SavedModel with serving signatures (TF Serving, TFMA, Python).

Signatures:
- `serving_default`: serialized tf.Examples (flat int64 `image`, optional `label`) -> reconstruction,
  latent code, per-image PSNR and MSE. What TFMA and TF Serving's Example-based APIs call.
- `reconstruct`: float32 images in [-1, 1], shape (batch, H, W, C) -> the same outputs.
- `reconstruct_uint8`: uint8 images in [0, 255] -> the same outputs.
The per-image PSNR is the anomaly score and the figure the Evaluator averages: one definition
(`sparse_ae.metrics`) for training, serving and evaluation.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from sparse_ae.config import SparseAEConfig
from sparse_ae.data import images_from_examples, scale_images
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
        shape = [None, *self.config.image_shape]
        self.serve_examples = tf.function(
            self._serve_examples, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        self.reconstruct = tf.function(
            self._outputs, input_signature=[tf.TensorSpec(shape, tf.float32, name="images")])
        self.reconstruct_uint8 = tf.function(
            self._reconstruct_uint8, input_signature=[tf.TensorSpec(shape, tf.uint8, name="images")])

    def _outputs(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        latent = self.encoder(images, training=False)
        reconstruction = self.decoder(latent, training=False)
        mse = mse_per_image(images, reconstruction)
        return {"reconstruction": reconstruction, "latent": latent, "mse": mse, PSNR_OUTPUT: psnr_from_mse(mse)}

    def _reconstruct_uint8(self, images: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._outputs(scale_images(images))

    def _serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
        images, _ = images_from_examples(examples, self.config)
        return self._outputs(scale_images(images))


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
