"""Issue 16: the calibration that travels with a pushed model, `sparse-ae score`, and drift between runs.

One small pipeline run (garment_shapes/small, 1 epoch) pushes a real model; the scoring tests use
that SavedModel. The drift tests run the pipeline twice more on a brighter variant of the data.
"""

import glob
import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import LENIENT_GATE, small_pipeline_overrides

from pipeline.cli import main
from sparse_ae.calibration import CALIBRATION_FILE, read_calibration
from sparse_ae.serving_layout import serving_versions

pytestmark = pytest.mark.e2e  # every test here reads a pipeline run


@pytest.fixture(scope="module")
def served(tmp_path_factory, garment_data_dir):
    """(overrides, config, live version folder) after a first run that pushed a model.

    5 epochs of batches of 32 (about 16 dB): a 1-epoch model reconstructs every input as the same
    blur, garments and noise alike, and would flag nothing in particular.
    """
    from pipeline.local_runner import run_local
    from pipeline_config import load_config

    root = str(tmp_path_factory.mktemp("scoring"))
    overrides = small_pipeline_overrides(root, garment_data_dir, epochs=5) + LENIENT_GATE + ["model.batch_size=32"]
    config = load_config(overrides).absolute()
    run_local(config)
    versions = serving_versions(config.serving_dir)
    assert len(versions) == 1
    return overrides, config, os.path.join(config.serving_dir, str(versions[0]))


def _eval_records(config) -> list:
    """The pipeline's own eval split: gzipped tf.Examples written by TFDSExampleGen."""
    return sorted(glob.glob(os.path.join(config.pipeline_root, "TFDSExampleGen", "examples", "*", "Split-eval", "*")))


def _score(args, capsys) -> tuple:
    code = main(["score", *args, "--quiet"])
    return code, capsys.readouterr()


def test_stored_calibration_equals_the_quantiles_of_the_pushed_model_on_the_eval_split(served):
    _, config, live = served
    calibration = read_calibration(live)
    assert calibration is not None and calibration.quantile == 0.99 and calibration.count == 500
    # Recompute with the pushed SavedModel itself, through the signature TF Serving and TFMA call.
    serve = tf.saved_model.load(live).signatures["serving_default"]
    records = tf.data.TFRecordDataset(_eval_records(config), compression_type="GZIP").batch(256)
    mse = np.concatenate([serve(examples=batch)["mse"].numpy() for batch in records])
    assert len(mse) == 500
    for level, value in calibration.quantiles.items():
        assert value == pytest.approx(float(np.quantile(mse.astype(np.float64), float(level))), rel=1e-5)
    assert calibration.threshold == calibration.quantiles["0.99"]

    # ML Metadata: the push carries it; the Trainer's Model artifact holds the same file.
    from pipeline.mlmd_reader import execution_outputs, latest_run_id, node_executions, open_store

    store = open_store(config.resolved_metadata_path)
    executions = node_executions(store, config.pipeline_name, latest_run_id(store, config.pipeline_name))
    pushed = execution_outputs(store, executions["ServingPusher"].id)["pushed_model"]
    # ML Metadata's copy went through TFX's artifact properties, which keep about 6 significant digits.
    assert pushed.custom_properties["anomaly_threshold"].double_value == pytest.approx(calibration.threshold, rel=1e-5)
    assert pushed.custom_properties["anomaly_quantile"].double_value == 0.99
    assert json.loads(pushed.custom_properties["calibration"].string_value)["quantiles"] == calibration.quantiles
    model = execution_outputs(store, executions["Trainer"].id)["model"]
    assert read_calibration(os.path.join(model.uri, "Format-Serving")) == calibration


def test_score_flags_the_configured_rate_on_garments_and_writes_one_row_per_image(
    served, garment_data_dir, tmp_path, capsys
):
    _, config, live = served
    tfds_args = [
        "--dataset",
        "garment_shapes/small",
        "--set",
        f"dataset.data_dir={garment_data_dir}",
        "--set",
        "dataset.download=false",
        "--serving-dir",
        config.serving_dir,
    ]
    # The eval split is the calibration split: exactly the quantile's share lies above it.
    code, out = _score(tfds_args + ["--split", "test", "--output", str(tmp_path / "eval.csv")], capsys)
    assert code == 0, out.err
    rows = pd.read_csv(tmp_path / "eval.csv")
    assert len(rows) == 500 and rows["anomalous"].sum() == 5
    threshold = read_calibration(live).threshold
    assert ((rows["mse"] > threshold) == rows["anomalous"].astype(bool)).all()
    summary = json.loads((tmp_path / "eval.csv.summary.json").read_text())
    assert summary["count"] == 500 and summary["flagged"] == 5 and summary["threshold"] == threshold
    assert "0.99 quantile" in summary["threshold_source"] and "Flagged 5 (1.00%)" in out.out
    assert os.path.getsize(tmp_path / "eval.csv.worst.png") > 0

    # The train split (2,000 images the model was fitted on): reconstructed at least as well as the
    # calibration split, so at most the calibrated rate is flagged, up to binomial sampling error
    # (4 standard deviations); and the latent codes in Parquet.
    code, out = _score(
        tfds_args + ["--split", "train", "--latent", "--output", str(tmp_path / "train.parquet")], capsys
    )
    assert code == 0, out.err
    rows = pd.read_parquet(tmp_path / "train.parquet")
    n, p = 2000, 0.01
    assert len(rows) == n and rows["anomalous"].sum() <= n * p + 4 * math.sqrt(n * p * (1 - p))
    assert ((rows["mse"] > threshold) == rows["anomalous"].astype(bool)).all()
    latent = rows[[c for c in rows.columns if c.startswith("latent_")]].to_numpy()
    assert latent.shape == (n, config.model.latent_dim) and (latent >= 0).all()
    assert ((latent > 0).sum(axis=1) <= config.model.latent_top_k).all()  # the sparse (TopK) codes


def test_score_reads_the_pipelines_tfrecords_with_the_same_scores_as_the_tfds_split(
    served, garment_data_dir, tmp_path, capsys
):
    _, config, live = served
    folder = os.path.dirname(_eval_records(config)[0])
    code, out = _score(
        ["--examples", folder, "--model-dir", live, "--output", str(tmp_path / "records.csv"), "--no-plot"], capsys
    )
    assert code == 0, out.err
    records = pd.read_csv(tmp_path / "records.csv")
    code, out = _score(
        [
            "--dataset",
            "garment_shapes/small",
            "--split",
            "test",
            "--set",
            f"dataset.data_dir={garment_data_dir}",
            "--set",
            "dataset.download=false",
            "--model-dir",
            live,
            "--output",
            str(tmp_path / "tfds.csv"),
            "--no-plot",
        ],
        capsys,
    )
    tfds_rows = pd.read_csv(tmp_path / "tfds.csv")
    assert len(records) == 500 and records["id"].str.match(r"data_tfrecord-.*\.gz:\d+$").all()
    np.testing.assert_allclose(np.sort(records["mse"]), np.sort(tfds_rows["mse"]), rtol=1e-4)
    assert sorted(records["label"]) == sorted(tfds_rows["label"])


def _write_png(path, image: np.ndarray) -> None:
    with open(path, "wb") as handle:
        handle.write(tf.io.encode_png(image).numpy())


def test_images_unlike_the_training_data_are_mostly_flagged(served, tmp_path, capsys):
    _, config, _ = served
    rng = np.random.default_rng(16)
    folder = tmp_path / "unlike"
    folder.mkdir()
    for i in range(20):  # uniform noise
        _write_png(folder / f"noise_{i:02d}.png", rng.integers(0, 256, (28, 28, 1), dtype=np.uint8))
    y, x = np.mgrid[:28, :28]
    for i in range(1, 11):  # checkerboards and stripes of growing period
        _write_png(folder / f"checks_{i:02d}.png", (((x // i + y // i) % 2) * 255).astype(np.uint8)[..., None])
        _write_png(folder / f"stripes_{i:02d}.png", ((x // i % 2) * 255).astype(np.uint8)[..., None])
    code, out = _score(
        ["--images", str(folder), "--serving-dir", config.serving_dir, "--output", str(tmp_path / "unlike.csv")], capsys
    )
    assert code == 0, out.err
    rows = pd.read_csv(tmp_path / "unlike.csv")
    assert len(rows) == 40 and rows["anomalous"].mean() >= 0.9, rows.sort_values("mse").head(10)


def test_a_corrupt_and_a_wrong_size_image_are_named_and_skipped_and_the_others_scored(
    served, garment_data_dir, tmp_path, capsys
):
    _, config, _ = served
    from sparse_ae.data import load_images

    folder = tmp_path / "mixed"
    folder.mkdir()
    garments = list(
        load_images("garment_shapes/small", "test", garment_data_dir, download=False).take(3).as_numpy_iterator()
    )
    for i, image in enumerate(garments):
        _write_png(folder / f"garment_{i}.png", image)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    _write_png(folder / "too_big.png", np.zeros((32, 32, 1), np.uint8))
    _write_png(folder / "colour.png", np.zeros((28, 28, 3), np.uint8))
    (folder / "notes.txt").write_text("not an image, not scored")

    code, out = _score(
        ["--images", str(folder), "--serving-dir", config.serving_dir, "--output", str(tmp_path / "mixed.csv")], capsys
    )
    assert code == 0, out.err
    rows = pd.read_csv(tmp_path / "mixed.csv")
    assert list(rows["id"]) == ["garment_0.png", "garment_1.png", "garment_2.png"]
    summary = json.loads((tmp_path / "mixed.csv.summary.json").read_text())
    assert summary["count"] == 3 and summary["skipped"] == 3
    skipped = "\n".join(summary["skipped_examples"])
    assert "corrupt.png: a damaged PNG image" in skipped
    assert "too_big.png: image is 32x32 pixels; the model takes 28x28" in skipped
    assert "colour.png: image has 3 channels; the model takes 1" in skipped
    assert "Skipped 3 images" in out.out and "too_big.png" in out.out

    code, out = _score(
        [
            "--images",
            str(folder),
            "--serving-dir",
            config.serving_dir,
            "--strict",
            "--output",
            str(tmp_path / "strict.csv"),
        ],
        capsys,
    )
    assert code == 2 and "colour.png: image has 3 channels" in out.err and "--strict" in out.err


def test_score_refuses_a_missing_version_with_one_line(served, tmp_path, capsys):
    _, config, _ = served
    code, out = _score(
        [
            "--images",
            str(tmp_path),
            "--serving-dir",
            config.serving_dir,
            "--version",
            "7",
            "--output",
            str(tmp_path / "x.csv"),
        ],
        capsys,
    )
    assert code == 2 and "--version 7: no such version" in out.err


def test_score_ignores_a_half_copied_newest_version_as_tf_serving_does(served, tmp_path, capsys):
    """A version folder without saved_model.pb (an object-store push in progress, or a killed one)
    is not the live version: `score` takes the newest complete one, like the pusher, the resolver
    and `models`, and refuses the incomplete one by name."""
    _, _, live = served
    serving = tmp_path / "serving"
    shutil.copytree(live, serving / "1")
    shutil.copytree(os.path.join(live, "variables"), serving / "2" / "variables")  # saved_model.pb comes last
    images = tmp_path / "images"
    images.mkdir()
    _write_png(images / "blank.png", np.zeros((28, 28, 1), np.uint8))

    code, out = _score(
        ["--images", str(images), "--serving-dir", str(serving), "--output", str(tmp_path / "a.csv")], capsys
    )
    assert code == 0, out.err
    assert json.loads((tmp_path / "a.csv.summary.json").read_text())["model_dir"] == str(serving / "1")

    code, out = _score(
        ["--images", str(images), "--serving-dir", str(serving), "--version", "2", "--output", str(tmp_path / "b.csv")],
        capsys,
    )
    assert code == 2 and "--version 2:" in out.err and "no saved_model.pb" in out.err, out.err
    assert len(out.err.strip().splitlines()) == 1, out.err


def test_drift_to_a_brighter_dataset_is_reported_and_with_a_threshold_stops_before_training(
    served, garment_data_dir, tmp_path_factory
):
    from pipeline.local_runner import run_local
    from pipeline.run_summary import format_summary, summarize_run
    from pipeline_config import load_config
    from sparse_ae.data import tfds_builder

    overrides, config, live = served
    first = summarize_run(config.resolved_metadata_path, config.pipeline_name)
    assert first.drift == {"baseline": None, "measured": []}
    tfds_builder("garment_shapes/small_bright", data_dir=garment_data_dir, download=True)
    bright = overrides + ["dataset.name=garment_shapes/small_bright"]

    stopped = load_config(bright + ["drift.threshold=0.01"]).absolute()
    with pytest.raises(Exception, match="image: Jensen-Shannon divergence"):
        run_local(stopped)
    summary = summarize_run(config.resolved_metadata_path, config.pipeline_name)
    states = dict(summary.components)
    assert states["DriftValidator"] == "failed" and "Trainer" not in states and "ServingPusher" not in states
    assert "DriftValidator: DataValidationError: data drift" in summary.failure
    assert "drift.threshold 0.01" in summary.failure
    assert serving_versions(config.serving_dir) == [int(os.path.basename(live))]  # nothing pushed

    # Without a threshold the same shift is only reported; the run trains, gates and pushes; and
    # the BulkInferrer scores the eval split with the blessed model.
    run_local(load_config(bright + ["scoring.bulk_inference=true"]).absolute())
    summary = summarize_run(config.resolved_metadata_path, config.pipeline_name)
    measured = {m["feature"]: m["value"] for m in summary.drift["measured"]}
    assert summary.drift["threshold"] is None and measured["image"] > 0.01 and measured["label"] < 0.01
    assert dict(summary.components)["Trainer"] == "complete" and summary.pushed_path
    text = format_summary(summary)
    assert "Drift of the train split from the live model's data" in text and "no threshold: report only" in text
    assert read_calibration(summary.pushed_path).dataset == "garment_shapes/small_bright"
    # Calibrated on this very split: exactly the quantile's share is above the threshold.
    assert summary.bulk_inference == {
        "count": 500,
        "flagged": 5,
        "quantile": 0.99,
        "threshold": read_calibration(summary.pushed_path).threshold,
    }
    assert "Bulk inference: 5 of 500 images flagged as anomalous (1.00%" in text
    from pipeline.report.content import verdict  # the run report says the same

    details = verdict(summary, {})["details"]
    assert any("image Jensen-Shannon divergence" in line for line in details)
    assert any(line.startswith("Bulk inference: 5 of 500 images") for line in details)
    assert os.path.exists(os.path.join(live, CALIBRATION_FILE))  # the older version keeps its own
