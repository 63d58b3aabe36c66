"""tf.data pipelines of (input, target) pairs from a TFDS dataset or serialized tf.Examples."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from sparse_ae.config import SparseAEConfig
from sparse_ae.errors import DatasetUnavailableError  # noqa: F401  (re-exported)
from sparse_ae.datasets import garment_shapes  # noqa: F401  (registers the builder with TFDS)

DEFAULT_DATASET = "fashion_mnist"
IMAGE_KEY = "image"
LABEL_KEY = "label"


def scale_images(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] (or float already in [-1, 1]) -> float32 in [-1, 1], the tanh output range."""
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return tf.cast(images, tf.float32)


def corrupt(images: tf.Tensor, config: SparseAEConfig, seed: tf.Tensor) -> tf.Tensor:
    """Denoising corruption of inputs: Gaussian noise and/or random pixel masking, kept in [-1, 1].

    seed: a stateless RNG seed, shape [2]: the same seed gives the same corruption, whatever the
    thread that runs it. Masked pixels are set to -1, the background value of scaled images.
    """
    noise_seed, mask_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    corrupted = images
    if config.noise_stddev > 0:
        corrupted = corrupted + tf.random.stateless_normal(tf.shape(images), noise_seed, stddev=config.noise_stddev)
    if config.mask_fraction > 0:
        keep = tf.random.stateless_uniform(tf.shape(images), mask_seed) >= config.mask_fraction
        corrupted = tf.where(keep, corrupted, -tf.ones_like(corrupted))
    return tf.clip_by_value(corrupted, -1.0, 1.0)


def to_pairs(images: tf.data.Dataset, config: SparseAEConfig, training: bool) -> tf.data.Dataset:
    """Batch a dataset of single images into (input, target) pairs.

    Batches first and then scales and corrupts whole batches: one vectorised op per batch
    instead of one per image. Only the input is corrupted; the target stays clean.
    """
    if training and config.shuffle_buffer > 0:
        images = images.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True)
    batches = images.batch(config.batch_size)
    if not (training and config.denoising):
        return batches.map(lambda batch: (scale_images(batch),) * 2,
                           num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    # One stateless seed per batch from a seeded stream that differs each epoch: the corruption
    # is reproducible run to run although batches are corrupted in parallel threads (stateful
    # random ops there depend on which thread gets there first).
    seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2)

    def make_pair(batch, seed):
        clean = scale_images(batch)
        return corrupt(clean, config, seed), clean

    return (tf.data.Dataset.zip(batches, seeds)
            .map(make_pair, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def load_images(name: str, split: str, data_dir: Optional[str] = None, download: bool = True,
                with_labels: bool = False) -> tf.data.Dataset:
    """Decoded uint8 images (and labels) of one TFDS split, cached in memory after the first pass."""
    builder = tfds_builder(name, data_dir=data_dir, download=download)
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    if with_labels:
        dataset = dataset.map(lambda ex: (ex[IMAGE_KEY], ex[LABEL_KEY]), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda ex: ex[IMAGE_KEY], num_parallel_calls=tf.data.AUTOTUNE)
    # 70,000 28x28 uint8 images are 55 MB: caching the decoded bytes saves the PNG decode each epoch.
    return dataset.cache()


def tfds_builder(name: str, data_dir: Optional[str] = None, download: bool = True) -> tfds.core.DatasetBuilder:
    """A prepared TFDS builder; prepares it when download is allowed, else fails with a clear message.

    With download=False no network is tried at all (no GCS lookup).
    """
    try:
        builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise DatasetUnavailableError(f"unknown TFDS dataset {name!r}: {error}") from None
    if not builder.is_prepared():
        where = str(data_dir or builder.data_dir_root)
        if not download:
            raise DatasetUnavailableError(
                f"dataset {name!r} is not prepared in data_dir={where!r} and download is off; "
                f"prepare it where it can be built (e.g. `sparse-ae prepare --dataset {name} --set dataset.data_dir=DIR`) "
                f"and copy DIR here")
        try:
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
        except Exception as error:  # network errors come in many types; report them as one
            raise DatasetUnavailableError(
                f"dataset {name!r} is not prepared in data_dir={where!r} and preparing it "
                f"failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Without "
                f"the network, prepare it on a machine that has it and copy data_dir, or use the offline "
                f"dataset garment_shapes") from error
    return builder


def tfds_pairs(name: str, split: str, config: SparseAEConfig, training: bool,
               data_dir: Optional[str] = None, download: bool = True) -> tf.data.Dataset:
    """(input, target) batches from a TFDS image dataset (Fashion-MNIST by default)."""
    return to_pairs(load_images(name, split, data_dir, download), config, training)


def example_feature_spec(config: SparseAEConfig) -> dict:
    """Parsing spec of the tf.Examples the pipeline writes: a flat image and the label."""
    return {
        IMAGE_KEY: tf.io.FixedLenFeature([int(np.prod(config.image_shape))], tf.int64),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    }


def images_from_examples(serialized: tf.Tensor, config: SparseAEConfig) -> Tuple[tf.Tensor, tf.Tensor]:
    """Parse a batch of serialized tf.Examples into uint8 images (batch, H, W, C) and labels."""
    parsed = tf.io.parse_example(serialized, example_feature_spec(config))
    images = tf.reshape(tf.cast(parsed[IMAGE_KEY], tf.uint8), (-1, *config.image_shape))
    return images, parsed[LABEL_KEY]


def example_pairs(serialized: tf.data.Dataset, config: SparseAEConfig, training: bool) -> tf.data.Dataset:
    """(input, target) batches from a dataset of serialized tf.Examples."""
    images = serialized.batch(4096).map(lambda batch: images_from_examples(batch, config)[0]).unbatch()
    return to_pairs(images, config, training)
