"""The sparse autoencoder: a subclassed Keras model whose train and test steps add the KL penalty."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from sparse_ae.config import SparseAEConfig
from sparse_ae.losses import mean_unit_activation, penalty_from_unit_means
from sparse_ae.metrics import PSNR, mse_per_image
from sparse_ae.sparsity import active_units, hoyer, unit_scale

# Names of the figures each step reports (fit logs show them, with val_ for validation).
# active_units and hoyer are per image (sparse_ae/sparsity.py), a unit's scale being its largest value
# in the batch; metrics.json adds the eval split's figures with the split's scales (`code_sparsity`).
METRIC_NAMES = ("loss", "recon_loss", "kl_penalty", "psnr", "mean_activation", "active_units", "hoyer")


def hidden_layers(widths, activation: str, config: SparseAEConfig, prefix: str) -> list:
    """Dense layers of the given widths; with config.batch_norm, Dense -> BatchNormalization -> activation."""
    layers = []
    for i, width in enumerate(widths):
        if config.batch_norm:
            layers += [
                keras.layers.Dense(width, kernel_initializer=config.kernel_initializer, name=f"{prefix}_dense_{i}"),
                # momentum 0.9 (Keras: 0.99): the moving statistics that serving uses settle
                # within tens of steps, so short runs (a few epochs on small data) evaluate sanely.
                # synchronized: under a tf.distribute strategy the statistics are those of the
                # global batch, so N replicas train the model one device would.
                keras.layers.BatchNormalization(momentum=0.9, synchronized=True, name=f"{prefix}_norm_{i}"),
                keras.layers.Activation(activation, name=f"{prefix}_{activation}_{i}"),
            ]
        else:
            layers.append(
                keras.layers.Dense(
                    width,
                    activation=activation,
                    kernel_initializer=config.kernel_initializer,
                    name=f"{prefix}_dense_{i}",
                )
            )
    return layers


@keras.utils.register_keras_serializable(package="sparse_ae")
class TopK(keras.layers.Layer):
    """Keeps each image's k largest code units and sets the others to 0 (a k-sparse code).

    The mask is not differentiated: gradients reach the k kept units only, as in k-sparse
    autoencoders (Makhzani & Frey, 2013). Ties with the k-th value are all kept.
    """

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def call(self, code: tf.Tensor) -> tf.Tensor:
        kth_largest = tf.math.top_k(code, k=self.k, sorted=True).values[:, -1:]
        return tf.where(code >= tf.stop_gradient(kth_largest), code, tf.zeros_like(code))

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


def latent_layers(config: SparseAEConfig) -> list:
    """The code: Dense -> [BatchNormalization] -> latent_activation -> [TopK].

    Without latent_batch_norm and latent_top_k this is the seed's single Dense layer with its
    activation (same weights, so earlier checkpoints load).
    """
    dense = keras.layers.Dense(
        config.latent_dim,
        activation=None if config.latent_batch_norm else config.latent_activation,
        kernel_initializer=config.kernel_initializer,
        name="latent",
    )
    layers: list = [dense]
    if config.latent_batch_norm:
        layers += [
            keras.layers.BatchNormalization(momentum=0.9, synchronized=True, name="latent_norm"),
            keras.layers.Activation(config.latent_activation, name=f"latent_{config.latent_activation}"),
        ]
    if config.latent_top_k is not None:
        layers.append(TopK(config.latent_top_k, name=f"latent_top_{config.latent_top_k}"))
    return layers


def build_encoder(config: SparseAEConfig) -> keras.Sequential:
    """Flatten -> hidden layers -> latent code."""
    layers = [keras.layers.Flatten(input_shape=config.image_shape, name="flatten")]
    layers += hidden_layers(config.hidden_dims, config.encoder_activation, config, "encoder")
    layers += latent_layers(config)
    return keras.Sequential(layers, name="encoder")


def build_decoder(config: SparseAEConfig) -> keras.Sequential:
    """Latent code -> mirrored hidden layers -> tanh image in [-1, 1]."""
    layers = [keras.layers.InputLayer(input_shape=(config.latent_dim,), name="latent_input")]
    layers += hidden_layers(reversed(config.hidden_dims), config.decoder_activation, config, "decoder")
    layers.append(
        keras.layers.Dense(
            int(np.prod(config.image_shape)),
            activation="tanh",
            kernel_initializer=config.kernel_initializer,
            name="pixels",
        )
    )
    layers.append(keras.layers.Reshape(config.image_shape, name="image"))
    return keras.Sequential(layers, name="decoder")


class SparseAutoencoder(keras.Model):
    """Dense autoencoder with a KL sparsity penalty on its latent code in every update.

    `train_step` and `test_step` share one loss computation and one forward pass that yields
    both the latent code and the reconstruction. Metrics are attributes, so `fit` and
    `evaluate` log them and Keras resets them each epoch.
    """

    def __init__(self, config: SparseAEConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.encoder = build_encoder(config)
        self.decoder = build_decoder(config)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.recon_loss_tracker = keras.metrics.Mean(name="recon_loss")
        self.kl_penalty_tracker = keras.metrics.Mean(name="kl_penalty")
        self.psnr_metric = PSNR(name="psnr")
        self.mean_activation_tracker = keras.metrics.Mean(name="mean_activation")
        self.active_units_tracker = keras.metrics.Mean(name="active_units")
        self.hoyer_tracker = keras.metrics.Mean(name="hoyer")

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.recon_loss_tracker,
            self.kl_penalty_tracker,
            self.psnr_metric,
            self.mean_activation_tracker,
            self.active_units_tracker,
            self.hoyer_tracker,
        ]

    def encode(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.encoder(images, training=training)

    def decode(self, latent: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.decoder(latent, training=training)

    def forward(self, images: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """One pass: (latent code, reconstruction)."""
        latent = self.encode(images, training=training)
        return latent, self.decode(latent, training=training)

    def call(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.forward(images, training=training)[1]

    def compute_losses(
        self,
        targets: tf.Tensor,
        latent: tf.Tensor,
        reconstruction: tf.Tensor,
        sample_weight: tf.Tensor | None = None,
    ) -> dict[str, tf.Tensor]:
        """Per-image MSE, reconstruction MSE, per-unit mean activations, KL penalty, and `loss`.

        Every image has the same pixel count, so the mean of per-image MSEs is the batch MSE;
        PSNR reuses the per-image figures instead of recomputing the squared error. With
        sample weights (one per image) the reconstruction MSE and the units' mean activations
        are weighted means, so recon_loss stays an MSE and an image of weight 0 counts for
        nothing. `loss` adds the layers' regularisation losses (`self.losses`: kernel and
        activity regularizers), as Keras's compiled loss does.
        """
        image_mse = mse_per_image(targets, reconstruction)
        if sample_weight is None:
            recon_loss = tf.reduce_mean(image_mse)
            unit_means = mean_unit_activation(latent)
        else:
            weights = tf.reshape(tf.cast(sample_weight, image_mse.dtype), [-1])
            total = tf.reduce_sum(weights)
            recon_loss = tf.math.divide_no_nan(tf.reduce_sum(weights * image_mse), total)
            unit_means = tf.math.divide_no_nan(tf.reduce_sum(weights[:, None] * latent, axis=0), total)
        kl = penalty_from_unit_means(unit_means, self.config.sparsity_target, self.config.latent_activation)
        loss = recon_loss + self.config.sparsity_weight * kl
        if self.losses:
            loss += tf.add_n(self.losses)
        return {
            "loss": loss,
            "recon_loss": recon_loss,
            "kl_penalty": kl,
            "image_mse": image_mse,
            "unit_means": unit_means,
        }

    def _update_metrics(
        self, losses, latent: tf.Tensor, sample_weight: tf.Tensor | None = None
    ) -> dict[str, tf.Tensor]:
        self.loss_tracker.update_state(losses["loss"])
        self.recon_loss_tracker.update_state(losses["recon_loss"])
        self.kl_penalty_tracker.update_state(losses["kl_penalty"])
        self.psnr_metric.update_from_mse(losses["image_mse"], sample_weight)
        self.mean_activation_tracker.update_state(tf.reduce_mean(losses["unit_means"]))
        weights = None if sample_weight is None else tf.reshape(sample_weight, [-1])
        self.active_units_tracker.update_state(active_units(latent, unit_scale(latent)), weights)
        self.hoyer_tracker.update_state(hoyer(latent), weights)
        return {metric.name: metric.result() for metric in self.metrics}

    @staticmethod
    def _unpack(data) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
        """(inputs, targets, sample_weight) of a batch: (x,), (x, y) or (x, y, sample_weight);
        without targets the model reconstructs its inputs."""
        inputs, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return inputs, inputs if targets is None else targets, sample_weight

    # The steps have no data-dependent Python control flow, so AutoGraph has nothing to convert;
    # skipping it saves the source transformation of Keras internals on a process's first fit (docs/benchmarks.md).
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        inputs, targets, sample_weight = self._unpack(data)
        with tf.GradientTape() as tape:
            latent, reconstruction = self.forward(inputs, training=True)
            losses = self.compute_losses(targets, latent, reconstruction, sample_weight)
            # Under a distribution strategy gradients are summed across replicas; each replica's
            # share of the global-batch loss is its own mean divided by the replica count.
            scaled_loss = losses["loss"] / tf.distribute.get_strategy().num_replicas_in_sync
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=False))
        return self._update_metrics(losses, latent, sample_weight)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        inputs, targets, sample_weight = self._unpack(data)
        latent, reconstruction = self.forward(inputs, training=False)
        losses = self.compute_losses(targets, latent, reconstruction, sample_weight)
        return self._update_metrics(losses, latent, sample_weight)

    @tf.autograph.experimental.do_not_convert
    def predict_step(self, data):
        return super().predict_step(data)

    def get_config(self) -> dict:
        return {"config": self.config.model_dump()}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> SparseAutoencoder:
        return cls(SparseAEConfig.model_validate(config["config"]))


def build_model(config: SparseAEConfig, strategy: tf.distribute.Strategy | None = None) -> SparseAutoencoder:
    """A compiled, built model (Adam at config.learning_rate), ready for fit or load_weights.

    Variables, optimizer and metrics are created inside strategy.scope() (default: the current
    strategy), so they are mirrored across replicas and `fit` distributes the custom steps.
    The weights' initial values come from the global random seed: the caller seeds
    (`keras.utils.set_random_seed(config.seed)`) for a reproducible model.
    """
    with (strategy or tf.distribute.get_strategy()).scope():
        model = SparseAutoencoder(config, name="sparse_autoencoder")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate))
        # Building by a call creates the variables (inside the scope) and gives the model its
        # input shape, which saving and loading need.
        model(tf.zeros((1, *config.image_shape)))
    return model
