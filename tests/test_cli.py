"""The sparse-ae command as users run it: real subprocesses of the installed console script."""

import json

import pytest
from helpers import run_cli


def assert_weights_reproduce_the_recorded_psnr(output, metrics: dict, data_dir: str) -> None:
    """The saved weights, loaded into a model built from the recorded config, reconstruct the
    validation split (garment_shapes/small's test split) at the PSNR recorded for the best epoch,
    the one whose weights are kept; a model of the same config with other initial weights does not."""
    import numpy as np
    import tensorflow_datasets as tfds

    from sparse_ae.config import SparseAEConfig
    from sparse_ae.inference import anomaly_scores, load_model
    from sparse_ae.model import build_model

    config = SparseAEConfig(**metrics["config"])
    images = tfds.as_numpy(
        tfds.load("garment_shapes/small", split="test", data_dir=data_dir, download=False, batch_size=-1)
    )["image"]
    trained = load_model(str(output / "sparse_autoencoder.weights.h5"), config)
    psnr = float(np.mean(anomaly_scores(trained, images)["psnr"]))
    assert psnr == pytest.approx(metrics["best_val_psnr"], abs=0.05)
    untrained = build_model(config.model_copy(update={"seed": config.seed + 1}))
    assert psnr > float(np.mean(anomaly_scores(untrained, images)["psnr"])) + 1.0


@pytest.mark.slow  # trains twice in subprocesses
def test_train_then_reconstruct(garment_data_dir, tmp_path):
    output = tmp_path / "run"
    result = run_cli(
        "train",
        "--dataset",
        "garment_shapes/small",
        "--set",
        f"dataset.data_dir={garment_data_dir}",
        "--set",
        "dataset.download=false",
        "--set",
        "model.epochs=2",
        "--output",
        str(output),
        "--set",
        "model.hidden_dims=64",
        "--set",
        "model.latent_dim=16",
    )
    assert result.returncode == 0, result.stderr
    assert "Epoch 2/2" in result.stdout  # Keras's progress output
    metrics = json.load(open(output / "metrics.json"))
    assert metrics["epochs_run"] == 2 and metrics["config"]["hidden_dims"] == [64]
    assert_weights_reproduce_the_recorded_psnr(output, metrics, garment_data_dir)

    png = tmp_path / "grid.png"
    result = run_cli(
        "reconstruct",
        "--weights",
        str(output / "sparse_autoencoder.weights.h5"),
        "--set",
        "dataset.name=garment_shapes/small",
        "--set",
        f"dataset.data_dir={garment_data_dir}",
        "--set",
        "dataset.download=false",
        "--output",
        str(png),
    )
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # a `sparse-ae` process each
@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["train", "--dataset", "garment_shapes/small", "--output", "x", "--set", "model.sparsity_target=1.5"],
            "model.sparsity_target=1.5",
        ),
        (
            ["train", "--dataset", "garment_shapes/small", "--output", "x", "--set", "no_such_key=1"],
            "unknown key 'no_such_key'",
        ),
        (
            ["train", "--output", "x", "--set", "sparsity_target=0.02"],
            "unknown key 'sparsity_target' (did you mean model.sparsity_target?",
        ),
        (
            ["train", "--set", "model.epochs=many", "--output", "x"],
            "model.epochs='many': Input should be a valid integer",
        ),
        (
            [
                "train",
                "--set",
                "dataset.name=fashion_mnist",
                "--set",
                "dataset.download=false",
                "--set",
                "dataset.data_dir=/nonexistent/tfds",
                "--output",
                "x",
            ],
            "not prepared in data_dir='/nonexistent/tfds'",
        ),
        (["train", "--offline", "--output", "x"], "--offline was replaced by --set dataset.download=false"),
        (["train", "--data-dir", "d", "--output", "x"], "--data-dir was replaced by --set dataset.data_dir=DIR"),
        (["train", "--epochs", "2", "--output", "x"], "--epochs was replaced by --set model.epochs=N"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0] and "Traceback" not in result.stderr


@pytest.mark.slow  # trains in a subprocess
def test_baseline_prints_pca_of_any_tfds_split_and_train_prints_it_beside_the_model(garment_data_dir, tmp_path):
    from sparse_ae.linear_baseline import fit_on_tfds

    offline = ["--set", f"dataset.data_dir={garment_data_dir}", "--set", "dataset.download=false"]
    result = run_cli("baseline", "--dataset", "garment_shapes/small", *offline, "--set", "model.latent_dim=16")
    assert result.returncode == 0, result.stderr
    expected = fit_on_tfds("garment_shapes/small", "train", "test", 16, data_dir=garment_data_dir, download=False)[1]
    assert result.stdout.strip().splitlines()[-1] == (
        f"garment_shapes/small: PCA-16 (fitted on train, 2000 images) eval PSNR on test (500 images) "
        f"{expected['eval_psnr']:.2f} dB, MSE {expected['eval_mse']:.5f}"
    )
    bad = run_cli("baseline", "--dataset", "garment_shapes/small", *offline, "--code-size", "1000")
    assert bad.returncode == 2 and "exceeds the 784 pixels" in bad.stderr

    output = tmp_path / "run"
    trained = run_cli(
        "train",
        "--dataset",
        "garment_shapes/small",
        *offline,
        "--set",
        "model.epochs=1",
        "--output",
        str(output),
        "--set",
        "model.hidden_dims=64",
        "--set",
        "model.latent_dim=16",
    )
    assert trained.returncode == 0, trained.stderr
    metrics = json.load(open(output / "metrics.json"))
    assert (
        f"linear baseline on garment_shapes/small: PCA-16 val_psnr {expected['eval_psnr']:.2f} dB; the model "
        f"{metrics['best_val_psnr'] - expected['eval_psnr']:+.2f} dB" in trained.stdout
    )
    # One epoch misses both (issue 26, case 7): train says so under the figures.
    assert metrics["best_val_psnr"] < expected["eval_psnr"]
    assert abs(metrics["best_val_mean_activation"] - 0.05) > 0.02
    warnings = [line for line in trained.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, trained.stdout
    assert warnings[0].startswith(f"warning: mean activation {metrics['best_val_mean_activation']:.4f} is ")
    k = metrics["linear_baseline_at_active"]["code_size"]
    assert warnings[1].startswith("warning: val_psnr is ") and f"below PCA-{k}, a linear code" in warnings[1]
