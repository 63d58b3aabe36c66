"""The custom-step model: one forward pass, metrics in fit logs, sparsity that works."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from sparse_ae.config import SparseAEConfig
from sparse_ae.model import METRIC_NAMES, SparseAutoencoder, build_model


def structured_images(count: int, seed: int = 0) -> np.ndarray:
    """Blobs of random position and size in [-1, 1]: learnable, unlike uniform noise."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:28, :28]
    centres = rng.uniform(8, 20, size=(count, 2))
    radii = rng.uniform(3, 8, size=(count, 1, 1))
    distance = np.hypot(yy[None] - centres[:, 0, None, None], xx[None] - centres[:, 1, None, None])
    return np.where(distance < radii, 0.8, -1.0).astype(np.float32)[..., None]


def seeded_model(config: SparseAEConfig) -> SparseAutoencoder:
    """build_model after seeding, as its callers do: the same initial weights on every run."""
    keras.utils.set_random_seed(config.seed)
    return build_model(config)


def pairs(images: np.ndarray, batch_size: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((images, images)).batch(batch_size)


def test_forward_shapes_and_ranges(small_config):
    model = seeded_model(small_config)
    latent, reconstruction = model.forward(structured_images(5))
    assert latent.shape == (5, small_config.latent_dim)
    assert reconstruction.shape == (5, 28, 28, 1)
    assert np.all(np.abs(reconstruction.numpy()) <= 1.0)
    codes = latent.numpy()
    assert np.all(codes >= 0) and np.all((codes > 0).sum(axis=1) <= small_config.latent_top_k)  # relu, TopK
    sigmoid = seeded_model(small_config.model_copy(update=DENSE_SIGMOID))
    assert np.all(
        (sigmoid.encode(structured_images(5)).numpy() > 0) & (sigmoid.encode(structured_images(5)).numpy() < 1)
    )


def test_each_step_encodes_once(small_config):
    model = seeded_model(small_config)
    calls = []
    original_call = model.encoder.call
    model.encoder.call = lambda *args, **kwargs: calls.append(1) or original_call(*args, **kwargs)
    images = structured_images(small_config.batch_size)
    model.train_step((tf.constant(images), tf.constant(images)))
    assert len(calls) == 1
    model.test_step((tf.constant(images), tf.constant(images)))
    assert len(calls) == 2


def test_fit_logs_every_metric_for_training_and_validation(small_config):
    model = seeded_model(small_config)
    data = pairs(structured_images(256), small_config.batch_size)
    history = model.fit(data, validation_data=data, epochs=1, verbose=0).history
    assert set(history) == set(METRIC_NAMES) | {f"val_{name}" for name in METRIC_NAMES}


def test_loss_decreases_and_psnr_rises(small_config):
    model = seeded_model(small_config.model_copy(update={"learning_rate": 3e-3}))
    data = pairs(structured_images(1024), 64)
    history = model.fit(data, epochs=6, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["psnr"][-1] > history["psnr"][0] + 3.0


# A dense sigmoid code (the seed's latent): what the KL penalty alone acts on.
DENSE_SIGMOID = {"latent_activation": "sigmoid", "latent_top_k": None, "latent_batch_norm": False}


def mean_activation_after_training(config: SparseAEConfig) -> float:
    model = seeded_model(config.model_copy(update={"learning_rate": 3e-3, **DENSE_SIGMOID}))
    data = pairs(structured_images(1024), 64)
    model.fit(data, epochs=5, verbose=0)
    return model.evaluate(data, verbose=0, return_dict=True)["mean_activation"]


def test_large_sparsity_weight_pulls_mean_activation_to_target(small_config):
    target = 0.05
    free = mean_activation_after_training(
        small_config.model_copy(update={"sparsity_weight": 0.0, "sparsity_target": target})
    )
    sparse = mean_activation_after_training(
        small_config.model_copy(update={"sparsity_weight": 1.0, "sparsity_target": target})
    )
    print(f"mean activation: beta=0 {free:.4f}, beta=1 {sparse:.4f}, target {target}")
    assert abs(sparse - target) < 0.02
    assert abs(free - target) > 3 * abs(sparse - target)


def test_relu_latent_trains_with_a_finite_penalty(small_config):
    config = small_config.model_copy(update={"latent_activation": "relu", "sparsity_weight": 0.1})
    model = seeded_model(config)
    history = model.fit(pairs(structured_images(512), 64), epochs=3, verbose=0).history
    assert all(np.isfinite(history["kl_penalty"]))
    assert history["loss"][-1] < history["loss"][0]


def test_sample_weights_of_zero_leave_out_their_images(small_config):
    """(x, y, sample_weight) batches: weights 0 on half the batch give the other half's loss, in
    evaluation and in the gradient step; recon_loss stays a (weighted) mean squared error."""
    model = seeded_model(small_config)
    images = tf.constant(structured_images(8))
    noisy = images + tf.random.stateless_normal(images.shape, seed=(1, 2), stddev=0.3)
    half = tf.constant([1.0] * 4 + [0.0] * 4)
    weighted = model.evaluate(noisy, images, sample_weight=half, batch_size=8, verbose=0, return_dict=True)
    first_half = model.evaluate(noisy[:4], images[:4], batch_size=4, verbose=0, return_dict=True)
    whole = model.evaluate(noisy, images, batch_size=8, verbose=0, return_dict=True)
    for name in ("loss", "recon_loss", "kl_penalty", "psnr"):
        assert abs(weighted[name] - first_half[name]) < 1e-5 * max(1.0, abs(first_half[name])), name
    assert abs(weighted["loss"] - whole["loss"]) > 1e-4  # the weights did change the figure

    # The gradient step (plain SGD, so the update is the gradient itself): the weighted batch moves
    # the weights exactly as its first half alone does. Without batch normalization, whose batch
    # statistics in training mode see every image of the batch, whatever its weight.
    after = []
    for data in ((noisy, images, half), (noisy[:4], images[:4])):
        stepped = seeded_model(small_config.model_copy(update={"batch_norm": False, "latent_batch_norm": False}))
        stepped.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
        stepped.train_step(data)
        after.append(stepped.get_weights())
    for left, right in zip(*after, strict=False):
        np.testing.assert_allclose(left, right, atol=1e-6)


def test_regularisation_losses_add_to_the_loss(small_config):
    """Kernel and activity regularizers (self.losses) are part of `loss`, not of recon_loss or kl_penalty."""
    model = seeded_model(small_config)
    model.encoder.get_layer("latent").activity_regularizer = keras.regularizers.L1(0.01)
    regularizer = keras.regularizers.L2(0.5)
    model.decoder.get_layer("pixels").add_loss(lambda: regularizer(model.decoder.get_layer("pixels").kernel))
    images = tf.constant(structured_images(16))
    latent, reconstruction = model.forward(images)
    losses = model.compute_losses(images, latent, reconstruction)
    expected_regularisation = 0.01 * float(tf.reduce_sum(tf.abs(latent))) / 16 + float(
        regularizer(model.decoder.get_layer("pixels").kernel)
    )
    plain = float(losses["recon_loss"] + small_config.sparsity_weight * losses["kl_penalty"])
    assert abs(float(losses["loss"]) - plain - expected_regularisation) < 1e-3 * expected_regularisation
    logs = model.test_step((images, images))
    assert abs(float(logs["loss"]) - float(losses["loss"])) < 1e-4


def test_build_model_leaves_the_global_seed_alone(small_config):
    """Seeding is the caller's: build_model draws from the global generator, never resets it."""
    keras.utils.set_random_seed(123)
    expected = np.random.rand(), tf.random.uniform(()).numpy()
    keras.utils.set_random_seed(123)
    build_model(small_config.model_copy(update={"seed": 7}))
    after = np.random.rand(), tf.random.uniform(()).numpy()
    keras.utils.set_random_seed(7)  # what the old build_model did: the next draws would be these
    reset = np.random.rand(), tf.random.uniform(()).numpy()
    assert after[0] != reset[0]
    # build_model consumed TF draws for the initial weights, but numpy's stream continues where it was.
    assert after[0] == expected[0]
    # Same seed, same model: callers that seed get reproducible weights.
    keras.utils.set_random_seed(5)
    first = build_model(small_config).get_weights()
    keras.utils.set_random_seed(5)
    second = build_model(small_config).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=False))


def test_autograph_leaves_keras_code_alone_and_converts_ours():
    """Keras 2's own code is traced as written (it converted in 39 s what traces in 4); ours is converted."""
    from tensorflow.python.autograph.impl import conversion

    import sparse_ae.model

    assert conversion.is_allowlisted(keras.layers.Dense(1).call)
    assert conversion.is_allowlisted(keras.Model.train_step)
    assert not conversion.is_allowlisted(sparse_ae.model.SparseAutoencoder.train_step)
