"""The code's sparsity per image (sparse_ae/sparsity.py) against direct numpy computations on known
codes; the TopK latent; the figures in metrics.json and in the exported signatures."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from sparse_ae import sparsity
from sparse_ae.config import ConfigError, SparseAEConfig, build_config
from sparse_ae.linear_baseline import psnr_per_image
from sparse_ae.model import TopK, build_model

# Four images' codes over five units: unit 4 is never on (dead); unit 0's largest value is 2.0.
CODES = np.array(
    [
        [2.0, 0.0, 0.5, 0.0, 0.0],
        [0.1, 0.3, 0.0, 0.0, 0.0],
        [0.3, 0.3, 0.3, 0.3, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ],
    dtype=np.float32,
)


def numpy_figures(codes: np.ndarray) -> dict:
    """The definitions of sparse_ae/sparsity.py's docstring, written out in numpy."""
    scale = codes.max(axis=0)
    active = (codes > 0.1 * scale) & (scale > 1e-6)
    n = codes.shape[1]
    l1, l2 = np.abs(codes).sum(axis=1), np.sqrt((codes**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        hoyer = np.where(l2 > 0, (np.sqrt(n) - l1 / l2) / (np.sqrt(n) - 1), 1.0)
    return {
        "active": active.sum(axis=1),
        "hoyer": hoyer,
        "dead": float(np.mean(scale <= 1e-6)),
        "zeroed": np.where(active, codes, 0.0),
    }


def test_per_image_figures_equal_a_direct_numpy_computation():
    expected = numpy_figures(CODES)
    scale = sparsity.unit_scale(CODES)
    np.testing.assert_array_equal(sparsity.active_units(CODES, scale).numpy(), expected["active"])
    np.testing.assert_allclose(sparsity.hoyer(CODES).numpy(), expected["hoyer"], rtol=1e-6)
    assert float(sparsity.dead_fraction(scale)) == pytest.approx(expected["dead"])
    np.testing.assert_array_equal(sparsity.active_only(CODES, scale).numpy(), expected["zeroed"])
    # by hand: unit 0 at 0.1 is below 10 % of its 2.0 (inactive); one unit is dead; an all-zero code has none
    assert list(expected["active"]) == [2, 1, 4, 0] and expected["dead"] == 0.2
    # a single unit on is Hoyer 1, four equal units of five are far less sparse
    assert sparsity.hoyer(np.array([[0, 0, 3.0, 0, 0]], np.float32)).numpy()[0] == pytest.approx(1.0)
    assert expected["hoyer"][2] == pytest.approx((np.sqrt(5) - 2) / (np.sqrt(5) - 1))


def test_measure_zeroes_inactive_units_before_decoding():
    """measure's PSNR with only the active units decoded, on a decoder that shows which units it got."""
    decoder = tf.constant(np.eye(5, 8, dtype=np.float32))  # code -> image: the units, then three zeros

    def decode(codes):
        return tf.reshape(tf.matmul(codes, decoder), (-1, 2, 4, 1))

    images = decode(tf.constant(CODES))  # targets: the full codes' own decoding

    def batches():
        return [(tf.constant(CODES[:2]), images[:2]), (tf.constant(CODES[2:]), images[2:])]

    figures = sparsity.measure(tf.identity, decode, batches)
    expected = numpy_figures(CODES)
    zeroed = decode(tf.constant(expected["zeroed"])).numpy()
    psnr_zeroed = psnr_per_image(images.numpy(), zeroed)
    assert figures["images"] == 4 and figures["units"] == 5
    assert figures["active_units"] == pytest.approx(expected["active"].mean())
    assert figures["hoyer"] == pytest.approx(expected["hoyer"].mean())
    assert figures["dead_fraction"] == pytest.approx(0.2)
    assert figures["psnr_active_only"] == pytest.approx(psnr_zeroed.mean(), rel=1e-5)
    assert figures["zeroing_cost"] == pytest.approx(figures["psnr"] - psnr_zeroed.mean(), rel=1e-5)
    assert figures["active_units_histogram"] == [1, 1, 1, 0, 1, 0]  # images with 0, 1, 2, ... active units
    assert figures["unit_scale"] == pytest.approx(list(CODES.max(axis=0)))


def test_top_k_keeps_each_images_k_largest_units_and_trains_only_them():
    codes = tf.constant([[0.1, 0.9, 0.4, 0.7], [0.5, 0.2, 0.8, 0.1]])
    with tf.GradientTape() as tape:
        tape.watch(codes)
        kept = TopK(2)(codes)
        total = tf.reduce_sum(kept)
    np.testing.assert_allclose(kept.numpy(), [[0, 0.9, 0, 0.7], [0.5, 0, 0.8, 0]], rtol=1e-6)
    np.testing.assert_array_equal(tape.gradient(total, codes).numpy(), [[0, 1, 0, 1], [1, 0, 1, 0]])


def test_a_top_k_model_gives_at_most_k_non_zero_units_per_image():
    config = SparseAEConfig(
        hidden_dims=(32,), latent_dim=16, latent_top_k=3, latent_batch_norm=True, latent_activation="relu"
    )
    model = build_model(config)
    codes = model.encode(tf.random.uniform((40, *config.image_shape), -1, 1)).numpy()
    assert ((codes > 0).sum(axis=1) <= 3).all() and (codes >= 0).all()
    assert [layer.name for layer in model.encoder.layers][-4:] == [
        "latent",
        "latent_norm",
        "latent_relu",
        "latent_top_3",
    ]


def test_top_k_larger_than_the_code_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="latent_top_k=65 exceeds latent_dim=64"):
        build_config(SparseAEConfig, {"latent_top_k": 65})


@pytest.fixture(scope="module")
def trained_and_exported(garment_data_dir, tmp_path_factory):
    """A short standalone training of the default (TopK) code, and its SavedModel with the figures."""
    from sparse_ae.export import export_saved_model
    from sparse_ae.inference import load_model
    from sparse_ae.linear_baseline import fit_on_tfds
    from sparse_ae.train import METRICS_FILE, WEIGHTS_FILE, train

    config = SparseAEConfig(hidden_dims=(64,), latent_dim=16, latent_top_k=4, batch_size=128, epochs=2)
    output = str(tmp_path_factory.mktemp("sparse"))
    train(config, "garment_shapes/small", output, data_dir=garment_data_dir, download=False, verbose=0)
    summary = json.load(open(os.path.join(output, METRICS_FILE)))
    model = load_model(os.path.join(output, WEIGHTS_FILE), config)
    baseline, _ = fit_on_tfds("garment_shapes/small", "train", "test", 16, garment_data_dir, download=False)
    export_dir = export_saved_model(model, os.path.join(output, "export"), baseline, summary["code_sparsity"])
    return summary, model, baseline, tf.saved_model.load(export_dir)


def test_metrics_json_holds_the_eval_splits_code_figures(trained_and_exported, garment_data_dir):
    from sparse_ae.data import load_images

    summary, model, _, _ = trained_and_exported
    images = np.stack(list(load_images("garment_shapes/small", "test", garment_data_dir, False).as_numpy_iterator()))
    codes = model.encode(images.astype(np.float32) / 127.5 - 1.0).numpy()
    expected = numpy_figures(codes)
    code = summary["code_sparsity"]
    assert code["images"] == len(images) == 500
    assert code["active_units"] == pytest.approx(expected["active"].mean(), abs=1e-4)
    assert code["hoyer"] == pytest.approx(expected["hoyer"].mean(), rel=1e-4)
    assert code["dead_fraction"] == pytest.approx(expected["dead"])
    assert code["unit_scale"] == pytest.approx(list(codes.max(axis=0)), rel=1e-5)
    assert code["nonzero_units"] <= 4  # TopK 4
    at_active = summary["linear_baseline_at_active"]
    assert at_active["code_size"] == max(1, round(code["active_units"]))
    assert {"best_val_active_units", "best_val_hoyer"} <= set(summary)


def test_signatures_return_the_per_image_figures_with_the_eval_splits_scales(trained_and_exported, garment_data_dir):
    from sparse_ae.data import load_images

    summary, model, baseline, served = trained_and_exported
    images = np.stack(list(load_images("garment_shapes/small", "test", garment_data_dir, False).take(32)))
    outputs = served.signatures["reconstruct_uint8"](images=tf.constant(images))
    codes = outputs["latent"].numpy()
    scale = np.asarray(summary["code_sparsity"]["unit_scale"], np.float32)
    active = (codes > 0.1 * scale) & (scale > 1e-6)
    np.testing.assert_array_equal(outputs["active_units"].numpy(), active.sum(axis=1))
    np.testing.assert_allclose(outputs["hoyer"].numpy(), numpy_figures(codes)["hoyer"], rtol=1e-5)
    scaled = images.astype(np.float32) / 127.5 - 1.0
    zeroed = model.decode(np.where(active, codes, 0.0).astype(np.float32)).numpy()
    np.testing.assert_allclose(outputs["psnr_active_only"].numpy(), psnr_per_image(scaled, zeroed), rtol=1e-4)
    np.testing.assert_allclose(
        outputs["zeroing_cost"].numpy(), outputs["psnr"].numpy() - outputs["psnr_active_only"].numpy(), atol=1e-4
    )
    k = summary["linear_baseline_at_active"]["code_size"]
    pca_k = psnr_per_image(scaled, baseline.truncated(k).reconstruct(scaled))
    np.testing.assert_allclose(outputs["linear_baseline_psnr_at_active"].numpy(), pca_k, rtol=1e-4)
