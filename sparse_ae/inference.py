"""Load weights, reconstruct batches, score images by reconstruction error, reuse the encoder."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import tensorflow as tf
import tf_keras as keras

from sparse_ae.config import SparseAEConfig
from sparse_ae.data import scale_images
from sparse_ae.data import to_uint8 as to_uint8  # re-exported: reconstruct() then to_uint8()
from sparse_ae.metrics import mse_per_image, psnr_from_mse
from sparse_ae.model import SparseAutoencoder, build_model
from sparse_ae.storage import load_weights

ArrayLike: TypeAlias = np.ndarray | tf.Tensor


def load_model(weights_path: str, config: SparseAEConfig) -> SparseAutoencoder:
    """A model built from config with the weight-only checkpoint (a local path or gs://...) loaded into it."""
    model = build_model(config)
    load_weights(model, weights_path)
    return model


def _as_model_input(images: ArrayLike, config: SparseAEConfig) -> tf.Tensor:
    """uint8 [0, 255] or float [-1, 1] images of the config's shape, as float32 in [-1, 1]."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank == len(config.image_shape) and config.image_shape[-1] == 1:
        images = images[..., tf.newaxis]  # (batch, H, W) -> (batch, H, W, 1)
    if tuple(images.shape[1:]) != tuple(config.image_shape):
        raise ValueError(
            f"images of shape {tuple(images.shape)} do not match the model's "
            f"(batch, {', '.join(map(str, config.image_shape))})"
        )
    return scale_images(images)


def reconstruct(model: SparseAutoencoder, images: ArrayLike) -> np.ndarray:
    """Reconstructions in [-1, 1] of a batch of images (uint8 or float in [-1, 1])."""
    return model.predict_on_batch(_as_model_input(images, model.config))


def anomaly_scores(model: SparseAutoencoder, images: ArrayLike) -> dict[str, np.ndarray]:
    """Per-image reconstruction error: mse and psnr (dB; a low PSNR flags an anomaly)."""
    inputs = _as_model_input(images, model.config)
    mse = mse_per_image(inputs, model(inputs, training=False))
    return {"mse": mse.numpy(), "psnr": psnr_from_mse(mse).numpy()}


def load_encoder(weights_path: str, config: SparseAEConfig, trainable: bool = False) -> keras.Sequential:
    """The trained encoder alone (images -> latent code), e.g. to put a classifier on top.

    The weight-only checkpoint is loaded into a full model of the same architecture and its
    encoder is handed out; frozen by default so transfer training leaves it intact.
    """
    encoder = load_model(weights_path, config).encoder
    encoder.trainable = trainable
    return encoder
