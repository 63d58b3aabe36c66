"""Input pipelines: scaling, denoising corruption, TFDS (Fashion-MNIST mocked), tf.Examples."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from sparse_ae import data


def test_scale_images_maps_uint8_to_tanh_range():
    scaled = data.scale_images(tf.constant([0, 255, 128], tf.uint8)).numpy()
    np.testing.assert_allclose(scaled, [-1.0, 1.0, 128 / 127.5 - 1], atol=1e-6)


def image_dataset(count=128, seed=0):
    images = np.random.RandomState(seed).randint(0, 256, size=(count, 28, 28, 1)).astype(np.uint8)
    return images, tf.data.Dataset.from_tensor_slices(images)


def test_pairs_without_denoising_are_identical_and_in_range(small_config):
    _, dataset = image_dataset()
    inputs, targets = next(iter(data.to_pairs(dataset, small_config, training=True)))
    assert inputs.shape == (small_config.batch_size, 28, 28, 1)
    np.testing.assert_array_equal(inputs.numpy(), targets.numpy())
    assert inputs.numpy().min() >= -1 and inputs.numpy().max() <= 1


def test_denoising_corrupts_inputs_but_not_targets(small_config):
    images, dataset = image_dataset()
    config = small_config.model_copy(update={"noise_stddev": 0.3, "mask_fraction": 0.25, "shuffle_buffer": 0})
    inputs, targets = next(iter(data.to_pairs(dataset, config, training=True)))
    clean = images[: config.batch_size].astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(targets.numpy(), clean, atol=1e-6)
    assert np.abs(inputs.numpy() - clean).mean() > 0.1
    assert inputs.numpy().min() >= -1 and inputs.numpy().max() <= 1
    masked = np.mean(inputs.numpy() == -1.0) - np.mean(clean == -1.0)
    assert 0.15 < masked < 0.4
    # Validation data is never corrupted.
    val_inputs, val_targets = next(iter(data.to_pairs(dataset, config, training=False)))
    np.testing.assert_array_equal(val_inputs.numpy(), val_targets.numpy())


def test_denoising_is_reproducible_and_differs_each_epoch(small_config):
    """Same seed, same corruption in a new pipeline (batches are corrupted in parallel threads);
    a new epoch draws new noise."""
    _, dataset = image_dataset(count=512)
    config = small_config.model_copy(update={"noise_stddev": 0.3, "mask_fraction": 0.1, "shuffle_buffer": 0})

    def two_epochs():
        pairs = data.to_pairs(dataset, config, training=True)
        return [np.concatenate([inputs.numpy() for inputs, _ in pairs]) for _ in range(2)]

    first_run, second_run = two_epochs(), two_epochs()
    np.testing.assert_array_equal(first_run[0], second_run[0])
    np.testing.assert_array_equal(first_run[1], second_run[1])
    assert np.abs(first_run[0] - first_run[1]).mean() > 0.05
    reseeded = data.to_pairs(dataset, config.model_copy(update={"seed": config.seed + 1}), training=True)
    assert np.abs(np.concatenate([inputs.numpy() for inputs, _ in reseeded]) - first_run[0]).mean() > 0.05


def test_fashion_mnist_path_under_mock_data(small_config, tmp_path):
    with tfds.testing.mock_data(num_examples=100):
        batches = data.tfds_pairs("fashion_mnist", "train", small_config, training=True, data_dir=str(tmp_path))
        inputs, targets = next(iter(batches))
    assert inputs.shape == (small_config.batch_size, 28, 28, 1)
    assert inputs.dtype == tf.float32
    assert -1.0 <= inputs.numpy().min() and inputs.numpy().max() <= 1.0


def test_unprepared_dataset_offline_fails_with_a_clear_message(tmp_path):
    with pytest.raises(data.DatasetUnavailableError) as caught:
        data.tfds_builder("fashion_mnist", data_dir=str(tmp_path), download=False)
    message = str(caught.value)
    assert "fashion_mnist" in message and str(tmp_path) in message and "prepare" in message


def test_download_hosts_come_from_the_builders_recorded_urls(tmp_path):
    fashion = tfds.builder("fashion_mnist", data_dir=str(tmp_path), try_gcs=False)
    assert data.download_hosts(fashion) == [("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80)]
    generated = tfds.builder("garment_shapes/small", data_dir=str(tmp_path))
    assert data.download_hosts(generated) == []


PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@pytest.mark.timeout(120)  # TFDS's own retries would take minutes
def test_an_unreachable_download_host_fails_fast_naming_dataset_host_and_remedy(tmp_path, monkeypatch):
    """A host under .invalid never resolves (RFC 2606), with or without network on the machine."""
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(data, "download_hosts", lambda builder: [("fashion-mnist.sparse-ae-test.invalid", 80)])
    with pytest.raises(data.DatasetUnavailableError) as caught:
        data.tfds_builder("fashion_mnist", data_dir=str(tmp_path / "tfds"), download=True)
    message = str(caught.value)
    for fragment in (
        "dataset 'fashion_mnist'",
        "downloaded from fashion-mnist.sparse-ae-test.invalid",
        "the name fashion-mnist.sparse-ae-test.invalid does not resolve",
        "`sparse-ae prepare --dataset fashion_mnist --set dataset.data_dir=DIR`",
        "offline dataset garment_shapes",
    ):
        assert fragment in message, message
    assert not (tmp_path / "tfds" / "downloads").exists()  # TFDS never started


def test_reachability_probe_on_this_machine(monkeypatch):
    """A listening port answers; a closed one is refused; a proxy, when set, is what is probed."""
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert data.unreachable("127.0.0.1", port) is None
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
        assert data.unreachable("nowhere.sparse-ae-test.invalid", 80) is None  # the proxy answers for it
    monkeypatch.delenv("http_proxy")
    assert data.unreachable("127.0.0.1", port).startswith(f"no connection to 127.0.0.1:{port}")


def test_unknown_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(data.DatasetUnavailableError, match="no_such_dataset"):
        data.tfds_builder("no_such_dataset", data_dir=str(tmp_path))


def test_example_round_trip(small_config):
    images, _ = image_dataset(10)
    serialized = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    "image": tf.train.Feature(int64_list=tf.train.Int64List(value=image.reshape(-1).tolist())),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[index % 10])),
                }
            )
        ).SerializeToString()
        for index, image in enumerate(images)
    ]
    parsed_images, labels = data.images_from_examples(tf.constant(serialized), small_config)
    np.testing.assert_array_equal(parsed_images.numpy(), images)
    np.testing.assert_array_equal(labels.numpy(), np.arange(10) % 10)
    inputs, _ = next(iter(data.example_pairs(tf.data.Dataset.from_tensor_slices(serialized), small_config, False)))
    np.testing.assert_allclose(inputs.numpy(), images.astype(np.float32) / 127.5 - 1, atol=1e-6)
