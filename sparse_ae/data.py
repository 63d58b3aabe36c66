"""tf.data pipelines of (input, target) pairs from a TFDS dataset or serialized tf.Examples."""

from __future__ import annotations

import shlex
import socket
import threading
import urllib.parse
import urllib.request

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from sparse_ae.config import SparseAEConfig
from sparse_ae.dataset_names import check_dataset_name
from sparse_ae.datasets import garment_shapes  # noqa: F401  (registers the builder with TFDS)
from sparse_ae.errors import ConfigError, DatasetUnavailableError

DEFAULT_DATASET = "fashion_mnist"
# Seconds to wait for a download host before TFDS is let loose on it (TFDS retries for minutes).
PROBE_TIMEOUT_S = 5.0
IMAGE_KEY = "image"
LABEL_KEY = "label"


def scale_images(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] (or float already in [-1, 1]) -> float32 in [-1, 1], the tanh output range."""
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return tf.cast(images, tf.float32)


def to_uint8(images: np.ndarray | tf.Tensor) -> np.ndarray:
    """The inverse of scale_images: floats in [-1, 1] back to displayable uint8 [0, 255]."""
    return np.clip(np.rint((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


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
        return batches.map(lambda batch: (scale_images(batch),) * 2, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE
        )

    # One stateless seed per batch from a seeded stream that differs each epoch: the corruption
    # is reproducible run to run although batches are corrupted in parallel threads (stateful
    # random ops there depend on which thread gets there first).
    seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2)

    def make_pair(batch, seed):
        clean = scale_images(batch)
        return corrupt(clean, config, seed), clean

    return (
        tf.data.Dataset.zip(batches, seeds)
        .map(make_pair, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def load_images(
    name: str, split: str, data_dir: str | None = None, download: bool = True, with_labels: bool = False
) -> tf.data.Dataset:
    """Decoded uint8 images (and labels) of one TFDS split, cached in memory after the first pass."""
    builder = tfds_builder(name, data_dir=data_dir, download=download)
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    if with_labels:
        dataset = dataset.map(lambda ex: (ex[IMAGE_KEY], ex[LABEL_KEY]), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda ex: ex[IMAGE_KEY], num_parallel_calls=tf.data.AUTOTUNE)
    # 70,000 28x28 uint8 images are 55 MB: caching the decoded bytes saves the PNG decode each epoch.
    return dataset.cache()


def prepare_command(tfds_name: str, data_dir: str = "DIR") -> str:
    """The `sparse-ae prepare` command line that prepares tfds_name (name[/config][:version]) in data_dir,
    quoted for a shell: the one remedy of every message about a missing or damaged dataset."""
    name, _, version = tfds_name.partition(":")
    keys = [f"dataset.data_dir={data_dir}"] + ([f"dataset.version={version}"] if version else [])
    return shlex.join(["sparse-ae", "prepare", "--dataset", name] + [part for key in keys for part in ("--set", key)])


def tfds_builder(name: str, data_dir: str | None = None, download: bool = True) -> tfds.core.DatasetBuilder:
    """A prepared TFDS builder; prepares it when download is allowed, else fails with a clear message.

    With download=False no network is tried at all (no GCS lookup).
    """
    try:
        check_dataset_name(name, data_dir)  # one line with a short "did you mean", not TFDS's catalogue
    except ConfigError as error:
        raise DatasetUnavailableError(str(error)) from None
    builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
    if not builder.is_prepared():
        where = str(data_dir or builder.data_dir_root)
        if not download:
            raise DatasetUnavailableError(
                f"dataset {name!r} is not prepared in data_dir={where!r} and download is off; "
                f"prepare it where it can be built (e.g. `{prepare_command(name)}`) and copy DIR here"
            )
        check_download_hosts(builder, name, where)
        try:
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
        except Exception as error:  # network errors come in many types; report them as one
            raise DatasetUnavailableError(
                f"dataset {name!r} is not prepared in data_dir={where!r} and preparing it "
                f"failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). Without "
                f"the network, prepare it on a machine that has it and copy data_dir, or use the offline "
                f"dataset garment_shapes"
            ) from error
    return builder


def download_hosts(builder: tfds.core.DatasetBuilder) -> list[tuple[str, int]]:
    """(host, port) of every URL the builder downloads from, from its recorded checksums; empty
    for a builder that records none (a generated dataset such as garment_shapes)."""
    if type(builder).download_and_prepare.__module__.startswith("tensorflow_datasets.testing"):
        return []  # tfds.testing.mock_data: the download is a no-op, nothing is fetched
    hosts = set()
    for url in getattr(builder, "url_infos", None) or {}:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname:
            hosts.add((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    return sorted(hosts)


def unreachable(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why host:port cannot be reached (name lookup and TCP connect within timeout); None if it can.

    Through a proxy (HTTPS_PROXY and the like, unless NO_PROXY exempts the host) the proxy is
    what must answer.
    """
    proxy = urllib.request.getproxies().get("https" if port == 443 else "http")
    if proxy and not urllib.request.proxy_bypass(host):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = parts.hostname or host, parts.port or 80
    outcome: dict = {}

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as error:
            outcome["error"] = error

    # In a thread: a name lookup has no timeout of its own and can hang for the resolver's retries.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    if probe.is_alive():
        return f"no answer from {host}:{port} within {timeout:g} s"
    error = outcome.get("error")
    if error is None:
        return None
    if isinstance(error, socket.gaierror):
        return f"the name {host} does not resolve ({error.strerror})"
    return f"no connection to {host}:{port} ({error.strerror or type(error).__name__})"


def check_download_hosts(builder: tfds.core.DatasetBuilder, name: str, where: str) -> None:
    """Fail within seconds, naming dataset, host and remedy, when a download host cannot be reached
    (instead of TFDS's minutes of retries)."""
    for host, port in download_hosts(builder):
        reason = unreachable(host, port)
        if reason:
            raise DatasetUnavailableError(
                f"dataset {name!r} is not prepared in data_dir={where!r} and must be downloaded from {host}, "
                f"which cannot be reached: {reason}. Prepare it where there is network (`{prepare_command(name)}`) "
                f"and copy DIR here, or use the offline dataset garment_shapes (--dataset garment_shapes/full)"
            )


def tfds_pairs(
    name: str,
    split: str,
    config: SparseAEConfig,
    training: bool,
    data_dir: str | None = None,
    download: bool = True,
) -> tf.data.Dataset:
    """(input, target) batches from a TFDS image dataset (Fashion-MNIST by default)."""
    return to_pairs(load_images(name, split, data_dir, download), config, training)


def example_feature_spec(config: SparseAEConfig) -> dict:
    """Parsing spec of the tf.Examples the pipeline writes: a flat image and the label."""
    return {
        IMAGE_KEY: tf.io.FixedLenFeature([int(np.prod(config.image_shape))], tf.int64),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    }


def images_from_examples(serialized: tf.Tensor, config: SparseAEConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Parse a batch of serialized tf.Examples into uint8 images (batch, H, W, C) and labels."""
    parsed = tf.io.parse_example(serialized, example_feature_spec(config))
    images = tf.reshape(tf.cast(parsed[IMAGE_KEY], tf.uint8), (-1, *config.image_shape))
    return images, parsed[LABEL_KEY]


def example_pairs(serialized: tf.data.Dataset, config: SparseAEConfig, training: bool) -> tf.data.Dataset:
    """(input, target) batches from a dataset of serialized tf.Examples."""
    images = serialized.batch(4096).map(lambda batch: images_from_examples(batch, config)[0]).unbatch()
    return to_pairs(images, config, training)
