"""Inputs shared by benchmarks: a prepared dataset, tf.Example files, an exported model."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import tf_keras as keras

from components.tfds_example_gen.executor import batch_to_examples
from sparse_ae.config import SparseAEConfig
from sparse_ae.data import tfds_builder
from sparse_ae.export import export_saved_model
from sparse_ae.model import SparseAutoencoder, build_model


def dataset_arrays(name: str, split: str, data_dir: str | None, limit: int | None = None):
    """(images uint8, labels) of a TFDS split, prepared if needed."""
    builder = tfds_builder(name, data_dir=data_dir, download=True)
    available = builder.info.splits[split].num_examples
    split_spec = f"{split}[:{min(limit, available)}]" if limit else split
    batch = tfds.as_numpy(builder.as_dataset(split=split_spec, batch_size=-1))
    return batch["image"], batch["label"]


def write_examples(images: np.ndarray, labels: np.ndarray, path: str) -> str:
    """Gzipped TFRecord of tf.Examples in ExampleGen's encoding."""
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for start in range(0, len(images), 4096):
            batch = {"image": images[start : start + 4096], "label": labels[start : start + 4096]}
            for record in batch_to_examples(batch, "image", "label"):
                writer.write(record)
    return path


def trained_model(images: np.ndarray, config: SparseAEConfig, epochs: int = 1) -> SparseAutoencoder:
    """A briefly trained model (its weights do not change any cost measured)."""
    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    scaled = images.astype(np.float32) / 127.5 - 1
    model.fit(
        tf.data.Dataset.from_tensor_slices((scaled, scaled)).batch(config.batch_size),
        epochs=epochs,
        verbose=0,
    )
    return model


def exported(model: SparseAutoencoder, directory: str, images: np.ndarray | None = None) -> str:
    """The SavedModel the pipeline ships; with images, also the linear baseline fitted on them and
    the code's sparsity measured on them, as the Trainer measures it on the eval split (the
    Evaluator's config averages the outputs both add)."""
    from sparse_ae import sparsity
    from sparse_ae.linear_baseline import fit_pca

    if images is None:
        return export_saved_model(model, os.path.join(directory, "saved_model"))
    scaled = images.astype(np.float32) / 127.5 - 1
    pairs = tf.data.Dataset.from_tensor_slices((scaled, scaled)).batch(1024)
    code = sparsity.measure(model.encode, model.decode, lambda: pairs)
    baseline = fit_pca([images], model.config.latent_dim)
    return export_saved_model(model, os.path.join(directory, "saved_model"), baseline, code)


def record_files(directory: str, pattern: str = "*.gz") -> list[str]:
    return sorted(tf.io.gfile.glob(os.path.join(directory, pattern)))
