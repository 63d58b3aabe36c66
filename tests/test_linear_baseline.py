"""The linear baseline (PCA of the same code size): numpy reference, standalone metrics.json, the
exported SavedModel's per-image figures, and the seed preset."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from sparse_ae import linear_baseline
from sparse_ae.config import SparseAEConfig
from sparse_ae.data import load_images
from sparse_ae.errors import ConfigError
from sparse_ae.export import (
    GAIN_OUTPUT,
    LINEAR_PSNR_OUTPUT,
    MEAN_ACTIVATION_OUTPUT,
    TARGET_RATIO_OUTPUT,
    export_saved_model,
)
from sparse_ae.model import build_model
from sparse_ae.presets import PRESETS, preset


def split_array(data_dir: str, split: str) -> np.ndarray:
    return np.stack(list(load_images("garment_shapes/small", split, data_dir, False).as_numpy_iterator()))


def direct_pca_psnr(train: np.ndarray, test: np.ndarray, k: int) -> float:
    """PCA by SVD of the whole centred train matrix, reconstruction clipped, mean per-image PSNR."""
    x = train.reshape(len(train), -1).astype(np.float64) / 127.5 - 1.0
    y = test.reshape(len(test), -1).astype(np.float64) / 127.5 - 1.0
    mean = x.mean(axis=0)
    _, _, rows = np.linalg.svd(x - mean, full_matrices=False)
    top = rows[:k].T
    restored = np.clip((y - mean) @ top @ top.T + mean, -1.0, 1.0)
    mse = ((y - restored) ** 2).mean(axis=1)
    return float(np.mean(10 * np.log10(4.0 / mse)))


def test_streaming_pca_equals_a_direct_numpy_reconstruction(garment_data_dir):
    train, test = split_array(garment_data_dir, "train"), split_array(garment_data_dir, "test")
    computed = linear_baseline.compute(
        "garment_shapes/small", "train", "test", 16, data_dir=garment_data_dir, download=False, batch_size=300
    )  # batches that do not divide the split
    assert computed["fitted_on_images"] == len(train) and computed["eval_images"] == len(test)
    assert abs(computed["eval_psnr"] - direct_pca_psnr(train, test, 16)) < 0.01
    assert computed["code_size"] == 16 and computed["dataset"] == "garment_shapes/small"
    # More components reconstruct better: the figure moves with the code size, as PCA's must.
    assert (
        linear_baseline.compute("garment_shapes/small", "train", "test", 64, data_dir=garment_data_dir, download=False)[
            "eval_psnr"
        ]
        > computed["eval_psnr"] + 1.0
    )


@pytest.mark.slow  # trains and exports a SavedModel
def test_exported_model_scores_the_baseline_and_the_code_per_image(garment_data_dir, tmp_path):
    train, test = split_array(garment_data_dir, "train"), split_array(garment_data_dir, "test")
    config = SparseAEConfig(hidden_dims=(32,), latent_dim=8, sparsity_target=0.1)
    baseline = linear_baseline.fit_pca([train], config.latent_dim)
    model = build_model(config)
    export_saved_model(model, str(tmp_path / "model"), baseline)
    outputs = tf.saved_model.load(str(tmp_path / "model")).signatures["reconstruct_uint8"](images=tf.constant(test))
    expected = linear_baseline.psnr_per_image(
        linear_baseline.scaled(test), baseline.reconstruct(linear_baseline.scaled(test))
    )
    np.testing.assert_allclose(outputs[LINEAR_PSNR_OUTPUT].numpy(), expected, atol=1e-3)
    np.testing.assert_allclose(outputs[GAIN_OUTPUT].numpy(), outputs["psnr"].numpy() - expected, atol=1e-3)
    latent = model.encode(linear_baseline.scaled(test)).numpy()
    np.testing.assert_allclose(outputs[MEAN_ACTIVATION_OUTPUT].numpy(), latent.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(outputs[TARGET_RATIO_OUTPUT].numpy(), latent.mean(axis=1) / 0.1, rtol=1e-5)


@pytest.mark.slow  # trains a model
def test_standalone_training_records_the_baseline_in_metrics_json(garment_data_dir, tmp_path):
    from sparse_ae.train import METRICS_FILE, train

    config = SparseAEConfig(hidden_dims=(32,), latent_dim=8, batch_size=128, epochs=1)
    train(config, "garment_shapes/small", str(tmp_path), data_dir=garment_data_dir, download=False, verbose=0)
    recorded = json.load(open(os.path.join(tmp_path, METRICS_FILE)))["linear_baseline"]
    direct = direct_pca_psnr(split_array(garment_data_dir, "train"), split_array(garment_data_dir, "test"), 8)
    assert recorded["method"] == "pca" and recorded["code_size"] == 8
    assert abs(recorded["eval_psnr"] - direct) < 0.01


def test_seed_preset_is_the_seed_configuration_exactly():
    """The seed: Flatten -> Dense(256, sigmoid) -> Dense(128, sigmoid) -> latent Dense(64, sigmoid) ->
    Dense(128, relu) -> Dense(256, relu) -> Dense(784, tanh); rho 0.05, beta 1e-3, Adam 1e-3, batch 256."""
    config = SparseAEConfig.model_validate(preset("seed"))
    model = build_model(config)
    layers = [
        (layer.units, layer.activation.__name__)
        for part in (model.encoder, model.decoder)
        for layer in part.layers
        if hasattr(layer, "units")
    ]
    assert layers == [(256, "sigmoid"), (128, "sigmoid"), (64, "sigmoid"), (128, "relu"), (256, "relu"), (784, "tanh")]
    assert not any("norm" in layer.name or "top" in layer.name for layer in model.encoder.layers + model.decoder.layers)
    assert (config.sparsity_target, config.sparsity_weight, config.learning_rate, config.batch_size, config.epochs) == (
        0.05,
        1e-3,
        1e-3,
        256,
        10,
    )
    assert (config.learning_rate_schedule, config.early_stopping_patience, config.kernel_initializer) == (
        "constant",
        None,
        "glorot_uniform",
    )
    assert type(model.optimizer).__name__ == "Adam"
    # Every setting the default changed is pinned by the preset, so new defaults never leak into it.
    changed = {
        key
        for key, value in SparseAEConfig().model_dump().items()
        if SparseAEConfig.model_validate(PRESETS["seed"]).model_dump()[key] != value
    }
    assert changed <= set(PRESETS["seed"])
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*seed"):
        preset("nope")


def test_the_defaults_are_the_sweeps_chosen_setting():
    """docs/model-defaults.md's table comes from scripts/sweep.py; its chosen row is the default config."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "sweep.py")
    spec = importlib.util.spec_from_file_location("sweep", path)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    chosen = SparseAEConfig.model_validate({**PRESETS["seed"], **sweep.SETTINGS[sweep.DEFAULT_SETTING]})
    assert chosen == SparseAEConfig()
