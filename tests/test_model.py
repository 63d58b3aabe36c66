"""The custom-step model: one forward pass, metrics in fit logs, sparsity that works."""
import numpy as np
import tensorflow as tf

from sparse_ae.config import SparseAEConfig
from sparse_ae.model import METRIC_NAMES, build_model


def structured_images(count: int, seed: int = 0) -> np.ndarray:
    """Blobs of random position and size in [-1, 1]: learnable, unlike uniform noise."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:28, :28]
    centres = rng.uniform(8, 20, size=(count, 2))
    radii = rng.uniform(3, 8, size=(count, 1, 1))
    distance = np.hypot(yy[None] - centres[:, 0, None, None], xx[None] - centres[:, 1, None, None])
    return np.where(distance < radii, 0.8, -1.0).astype(np.float32)[..., None]


def pairs(images: np.ndarray, batch_size: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((images, images)).batch(batch_size)


def test_forward_shapes_and_ranges(small_config):
    model = build_model(small_config)
    latent, reconstruction = model.forward(structured_images(5))
    assert latent.shape == (5, small_config.latent_dim)
    assert reconstruction.shape == (5, 28, 28, 1)
    assert np.all(np.abs(reconstruction.numpy()) <= 1.0)
    assert np.all((latent.numpy() >= 0) & (latent.numpy() <= 1))  # sigmoid code


def test_each_step_encodes_once(small_config):
    model = build_model(small_config)
    calls = []
    original_call = model.encoder.call
    model.encoder.call = lambda *args, **kwargs: calls.append(1) or original_call(*args, **kwargs)
    images = structured_images(small_config.batch_size)
    model.train_step((tf.constant(images), tf.constant(images)))
    assert len(calls) == 1
    model.test_step((tf.constant(images), tf.constant(images)))
    assert len(calls) == 2


def test_fit_logs_every_metric_for_training_and_validation(small_config):
    model = build_model(small_config)
    data = pairs(structured_images(256), small_config.batch_size)
    history = model.fit(data, validation_data=data, epochs=1, verbose=0).history
    assert set(history) == set(METRIC_NAMES) | {f"val_{name}" for name in METRIC_NAMES}


def test_loss_decreases_and_psnr_rises(small_config):
    model = build_model(small_config.model_copy(update={"learning_rate": 3e-3}))
    data = pairs(structured_images(1024), 64)
    history = model.fit(data, epochs=6, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["psnr"][-1] > history["psnr"][0] + 3.0


def mean_activation_after_training(config: SparseAEConfig) -> float:
    model = build_model(config.model_copy(update={"learning_rate": 3e-3}))
    data = pairs(structured_images(1024), 64)
    model.fit(data, epochs=5, verbose=0)
    return model.evaluate(data, verbose=0, return_dict=True)["mean_activation"]


def test_large_sparsity_weight_pulls_mean_activation_to_target(small_config):
    target = 0.05
    free = mean_activation_after_training(small_config.model_copy(update={"sparsity_weight": 0.0,
                                                                           "sparsity_target": target}))
    sparse = mean_activation_after_training(small_config.model_copy(update={"sparsity_weight": 1.0,
                                                                             "sparsity_target": target}))
    print(f"mean activation: beta=0 {free:.4f}, beta=1 {sparse:.4f}, target {target}")
    assert abs(sparse - target) < 0.02
    assert abs(free - target) > 3 * abs(sparse - target)


def test_relu_latent_trains_with_a_finite_penalty(small_config):
    config = small_config.model_copy(update={"latent_activation": "relu", "sparsity_weight": 0.1})
    model = build_model(config)
    history = model.fit(pairs(structured_images(512), 64), epochs=3, verbose=0).history
    assert all(np.isfinite(history["kl_penalty"]))
    assert history["loss"][-1] < history["loss"][0]
