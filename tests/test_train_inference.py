"""Standalone training on garment_shapes/small, checkpoints, inference and encoder reuse."""

import json
import os

import numpy as np
import pytest
import tf_keras as keras

from sparse_ae.data import load_images
from sparse_ae.inference import anomaly_scores, load_encoder, load_model, reconstruct
from sparse_ae.metrics import psnr_per_image
from sparse_ae.model import METRIC_NAMES
from sparse_ae.train import METRICS_FILE, WEIGHTS_FILE, train


@pytest.fixture(scope="module")
def trained(garment_data_dir, tmp_path_factory):
    """(config, output dir, summary) of a short real training run."""
    from sparse_ae.config import SparseAEConfig

    config = SparseAEConfig(hidden_dims=(128,), latent_dim=32, batch_size=128, epochs=3)
    output = str(tmp_path_factory.mktemp("train"))
    summary = train(config, "garment_shapes/small", output, data_dir=garment_data_dir, download=False, verbose=0)
    return config, output, summary


@pytest.fixture(scope="module")
def test_images(garment_data_dir):
    return np.stack(
        list(load_images("garment_shapes/small", "test", garment_data_dir, False).take(64).as_numpy_iterator())
    )


def test_training_writes_weights_metrics_and_logs(trained):
    config, output, summary = trained
    assert os.path.getsize(os.path.join(output, WEIGHTS_FILE)) > 0
    assert os.listdir(os.path.join(output, "logs"))
    recorded = json.load(open(os.path.join(output, METRICS_FILE)))
    assert recorded == json.loads(json.dumps(summary))
    assert recorded["epochs_run"] == 3 and recorded["dataset"] == "garment_shapes/small"
    assert recorded["best_val_loss"] == min(recorded["history"]["val_loss"])
    for name in METRIC_NAMES:
        assert recorded[f"final_val_{name}"] == recorded["history"][f"val_{name}"][-1]
    assert recorded["config"]["latent_dim"] == 32
    assert recorded["history"]["val_psnr"][-1] > recorded["history"]["val_psnr"][0]


def test_weights_round_trip_to_identical_reconstructions(trained, test_images):
    config, output, _ = trained
    first = reconstruct(load_model(os.path.join(output, WEIGHTS_FILE), config), test_images)
    second = reconstruct(load_model(os.path.join(output, WEIGHTS_FILE), config), test_images)
    np.testing.assert_array_equal(first, second)
    untrained = reconstruct(keras_untrained(config), test_images)
    assert np.abs(first - untrained).mean() > 0.01


def keras_untrained(config):
    import tf_keras

    from sparse_ae.model import build_model

    tf_keras.utils.set_random_seed(config.seed + 1)
    return build_model(config)


def test_reconstruct_accepts_uint8_and_float(trained, test_images):
    config, output, _ = trained
    model = load_model(os.path.join(output, WEIGHTS_FILE), config)
    from_uint8 = reconstruct(model, test_images)
    from_float = reconstruct(model, test_images.astype(np.float32) / 127.5 - 1)
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        reconstruct(model, np.zeros((2, 32, 32, 1), np.uint8))


def test_anomaly_scores_flag_noise(trained, test_images):
    config, output, _ = trained
    model = load_model(os.path.join(output, WEIGHTS_FILE), config)
    scores = anomaly_scores(model, test_images)
    expected = psnr_per_image(test_images / 127.5 - 1, reconstruct(model, test_images)).numpy()
    np.testing.assert_allclose(scores["psnr"], expected, rtol=1e-4)
    noise = np.random.RandomState(0).randint(0, 256, size=test_images.shape).astype(np.uint8)
    assert anomaly_scores(model, noise)["psnr"].mean() < scores["psnr"].mean() - 3


def test_encoder_alone_loads_into_a_classifier(trained, test_images):
    config, output, _ = trained
    model = load_model(os.path.join(output, WEIGHTS_FILE), config)
    encoder = load_encoder(os.path.join(output, WEIGHTS_FILE), config)
    np.testing.assert_allclose(
        encoder(test_images / 127.5 - 1).numpy(), model.encode(test_images / 127.5 - 1).numpy(), atol=1e-6
    )
    classifier = keras.Sequential([encoder, keras.layers.Dense(10, activation="softmax")])
    classifier.compile("adam", "sparse_categorical_crossentropy")
    before = [w.copy() for w in encoder.get_weights()]
    classifier.fit(test_images / 127.5 - 1, np.arange(len(test_images)) % 10, epochs=1, verbose=0)
    for old, new in zip(before, encoder.get_weights(), strict=False):
        np.testing.assert_array_equal(old, new)  # frozen encoder: transfer training leaves it intact
    assert len(classifier.trainable_weights) == 2
