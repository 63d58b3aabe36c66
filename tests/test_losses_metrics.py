"""KL penalty and PSNR against hand computations in numpy."""

import numpy as np
import pytest
import tf_keras as keras

from sparse_ae.losses import kl_divergence, sparsity_penalty
from sparse_ae.metrics import PSNR, psnr_per_image


def numpy_kl(rho, rho_hat):
    return rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))


def test_kl_matches_hand_computation():
    rho_hat = np.array([0.05, 0.2, 0.5, 0.9], dtype=np.float32)
    np.testing.assert_allclose(kl_divergence(0.05, rho_hat).numpy(), numpy_kl(0.05, rho_hat), rtol=1e-5)
    assert kl_divergence(0.05, np.float32(0.05)).numpy() == pytest.approx(0.0, abs=1e-7)


def test_sparsity_penalty_sums_kl_of_batch_means():
    latent = np.random.RandomState(0).uniform(0, 1, size=(32, 8)).astype(np.float32)
    expected = numpy_kl(0.1, latent.mean(axis=0)).sum()
    assert sparsity_penalty(latent, 0.1).numpy() == pytest.approx(expected, rel=1e-5)


def test_kl_is_finite_at_the_edges_and_for_relu_codes():
    assert np.isfinite(sparsity_penalty(np.zeros((4, 3), np.float32), 0.05).numpy())
    assert np.isfinite(sparsity_penalty(np.ones((4, 3), np.float32), 0.05).numpy())
    relu_code = np.full((4, 3), 5.0, np.float32)  # means far above 1: squashed by tanh, not clipped
    relu_penalty = sparsity_penalty(relu_code, 0.05, "relu").numpy()
    expected = numpy_kl(0.05, np.tanh(5.0)) * 3
    assert relu_penalty == pytest.approx(expected, rel=1e-3)


def numpy_psnr(targets, reconstructions, max_val=2.0):
    mse = ((targets - reconstructions) ** 2).reshape(len(targets), -1).mean(axis=1)
    return 10 * np.log10(max_val**2 / mse)


def test_psnr_per_image_matches_numpy():
    rng = np.random.RandomState(1)
    targets = rng.uniform(-1, 1, size=(6, 28, 28, 1)).astype(np.float32)
    recon = np.clip(targets + rng.normal(0, 0.1, size=targets.shape), -1, 1).astype(np.float32)
    np.testing.assert_allclose(psnr_per_image(targets, recon).numpy(), numpy_psnr(targets, recon), rtol=1e-5)


def test_perfect_reconstruction_has_finite_psnr():
    images = np.zeros((2, 28, 28, 1), np.float32)
    assert np.all(np.isfinite(psnr_per_image(images, images).numpy()))


def test_psnr_metric_is_the_mean_of_per_image_psnr_and_serialises():
    rng = np.random.RandomState(2)
    targets = rng.uniform(-1, 1, size=(10, 28, 28, 1)).astype(np.float32)
    recon = (targets * 0.8).astype(np.float32)
    metric = PSNR()
    metric.update_state(targets[:4], recon[:4])
    metric.update_state(targets[4:], recon[4:])
    assert metric.result().numpy() == pytest.approx(numpy_psnr(targets, recon).mean(), rel=1e-5)
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, PSNR) and restored.name == "psnr" and restored.max_val == 2.0
