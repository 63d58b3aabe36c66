"""Training throughput: the custom-step SparseAutoencoder against a plain Keras `fit` of the same
architecture with MSE loss, on the same tf.data pipeline and batch size, in one process.

Epochs alternate between the two models so that drift (thermal, other load) hits both alike;
the first epoch of each is a warm-up (tracing) and is not counted. Run alone with
`python -m benchmarks.run --only train_step`.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf  # benchmarks/run.py has called pipeline.process.setup() (Keras 2) by now
import tf_keras as keras

from benchmarks.common import positive, safe_ratio
from sparse_ae.config import SparseAEConfig
from sparse_ae.data import load_images, to_pairs
from sparse_ae.model import build_decoder, build_encoder, build_model


def plain_keras_model(config: SparseAEConfig) -> keras.Model:
    """The same layers as SparseAutoencoder, trained by Keras's own train_step with MSE."""
    keras.utils.set_random_seed(config.seed)
    model = keras.Sequential([build_encoder(config), build_decoder(config)], name="plain_autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
    return model


def epoch_seconds(model: keras.Model, data: tf.data.Dataset) -> float:
    started = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    return time.perf_counter() - started


def run(data_dir: str | None, dataset: str = "garment_shapes/full", epochs: int = 3, limit: int | None = None) -> dict:
    config = SparseAEConfig()
    images = load_images(dataset, "train", data_dir, download=True)
    if limit:
        images = images.take(limit)
    images = tf.data.Dataset.from_tensor_slices(np.stack(list(images.as_numpy_iterator())))
    count = int(images.cardinality())
    data = to_pairs(images, config, training=True).cache()  # same batches for both, decoded once

    models = {"baseline_plain_fit": plain_keras_model(config), "sparse_autoencoder": build_model(config)}
    warmup = {name: epoch_seconds(model, data) for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(epochs):
        for name, model in models.items():
            times[name].append(epoch_seconds(model, data))
    rate = {name: count / float(np.median(seconds)) for name, seconds in times.items()}
    # Each pair of neighbouring epochs ran under the same conditions: the median of the pairwise
    # ratios is steadier than the ratio of medians when the machine's speed drifts.
    pair_ratios = [
        safe_ratio(plain, ours)
        for plain, ours in zip(times["baseline_plain_fit"], times["sparse_autoencoder"], strict=False)
    ]
    measured = [ratio for ratio in pair_ratios if ratio is not None]
    return {
        "description": "examples/s of fit, median over alternating epochs after one warm-up epoch; "
        "ratio: median of pairwise epoch-time ratios",
        "sizes": {
            "dataset": dataset,
            "examples": count,
            "batch_size": config.batch_size,
            "epochs": epochs,
            "architecture": {"hidden_dims": list(config.hidden_dims), "latent_dim": config.latent_dim},
        },
        "baseline": {
            "name": "plain Keras fit, MSE",
            "examples_per_s": rate["baseline_plain_fit"],
            "epoch_seconds": times["baseline_plain_fit"],
            "warmup_seconds": warmup["baseline_plain_fit"],
        },
        "ours": {
            "name": "SparseAutoencoder custom train_step",
            "examples_per_s": rate["sparse_autoencoder"],
            "epoch_seconds": times["sparse_autoencoder"],
            "warmup_seconds": warmup["sparse_autoencoder"],
        },
        "ratio": positive(float(np.median(measured))) if measured else None,  # None: not measurable
        "pair_ratios": pair_ratios,
        "ratio_of_medians": safe_ratio(rate["sparse_autoencoder"], rate["baseline_plain_fit"]),
        "goal": ">= 0.95",
    }
