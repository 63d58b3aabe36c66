"""The KL-divergence sparsity penalty on the latent code."""

from __future__ import annotations

import tensorflow as tf

# Keeps log() finite when a unit is always off (rho_hat -> 0) or always on (-> 1).
_EPSILON = 1e-6


def kl_divergence(target: float, rho_hat: tf.Tensor) -> tf.Tensor:
    """Elementwise KL(target || rho_hat) between Bernoulli distributions."""
    rho_hat = tf.clip_by_value(rho_hat, _EPSILON, 1.0 - _EPSILON)
    target = tf.cast(target, rho_hat.dtype)
    return target * tf.math.log(target / rho_hat) + (1.0 - target) * tf.math.log((1.0 - target) / (1.0 - rho_hat))


def mean_unit_activation(latent: tf.Tensor) -> tf.Tensor:
    """rho_hat_j: the batch mean of each latent unit, shape (latent_dim,)."""
    return tf.reduce_mean(latent, axis=0)


def sparsity_penalty(latent: tf.Tensor, target: float, latent_activation: str = "sigmoid") -> tf.Tensor:
    """Sum over latent units of KL(target || rho_hat_j).

    A sigmoid code already lies in (0, 1). A relu code does not: its batch mean is squashed
    with tanh, which maps [0, inf) onto [0, 1) and is the identity near 0, so the penalty
    still pulls each unit's mean activation towards about artanh(target) (~target when small).
    """
    return penalty_from_unit_means(mean_unit_activation(latent), target, latent_activation)


def penalty_from_unit_means(unit_means: tf.Tensor, target: float, latent_activation: str = "sigmoid") -> tf.Tensor:
    """sparsity_penalty from precomputed per-unit batch means (the step reuses them for its metric)."""
    rho_hat = tf.math.tanh(unit_means) if latent_activation == "relu" else unit_means
    return tf.reduce_sum(kl_divergence(target, rho_hat))
