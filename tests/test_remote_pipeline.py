"""One whole pipeline run (LocalDagRunner) with pipeline_root and serving_dir on a non-local
filesystem: TensorFlow's in-process ram://, served to TF, TFX's fileio and Beam's filesystems
(tests/remote_fs.py). The ML Metadata store is a local sqlite file, as it must be."""

import json
import os
import types

import pytest
import tensorflow as tf
from helpers import LENIENT_GATE, small_pipeline_overrides
from remote_fs import register_ram_for_beam

pytestmark = pytest.mark.e2e  # every test here reads a pipeline run


def test_a_whole_run_with_pipeline_root_and_serving_dir_on_a_remote_filesystem(
    garment_data_dir, ram_root, tmp_path, monkeypatch, capsys
):
    from components import serving_dir
    from pipeline.local_runner import run_local
    from pipeline.run_summary import summarize_run
    from pipeline_config import load_config
    from sparse_ae.serving_layout import serving_versions

    register_ram_for_beam()
    metadata = str(tmp_path / "metadata" / "metadata.sqlite")
    config = load_config(
        small_pipeline_overrides(ram_root, garment_data_dir) + LENIENT_GATE + [f"metadata_path={metadata}"]
    )
    run_local(config)

    summary = summarize_run(metadata, config.pipeline_name)
    states = dict(summary.components)
    assert not summary.failed and all(state == "complete" for state in states.values()), states
    assert all(uri.startswith(f"{ram_root}/root/") for uri in summary.artifacts.values()), summary.artifacts
    assert summary.blessed is True and summary.example_count == 500
    serving = f"{ram_root}/serving"
    assert summary.pushed_path == f"{serving}/{serving_versions(serving)[-1]}"
    served = tf.saved_model.load(summary.pushed_path)
    outputs = served.signatures["reconstruct_uint8"](images=tf.zeros((2, 28, 28, 1), tf.uint8))
    assert bool(tf.reduce_all(tf.math.is_finite(outputs["psnr"])))
    assert tf.io.gfile.exists(os.path.join(summary.artifacts["Trainer.model_run"], "metrics.json"))
    _check_the_report_is_read_and_written_on_the_remote_root(config, metadata, summary, capsys)

    # Promotion control on the same remote serving dir: the URIs keep their scheme throughout.
    from pipeline import promotion
    from pipeline.promotion import PromotionRefused, inventory, promote

    (live,) = inventory(config).versions
    assert (live.path, live.live, live.action) == (summary.pushed_path, True, "pipeline")
    model_uri = summary.artifacts["Trainer.model"]
    with pytest.raises(PromotionRefused, match="is already live"):  # found by its ram:// URI
        promote(config, model_uri, reason="the same model again")
    # Deleted by hand, then promoted again with the clock standing still at the deleted version's
    # number (as within the same second): the number is never issued again, so the new folder is
    # never mistaken for the old push's.
    pushed_version = int(os.path.basename(summary.pushed_path))
    monkeypatch.setattr(serving_dir, "_now_s", lambda: pushed_version)
    # The promotions' own clock stands still too: each still keeps its own record.
    monkeypatch.setattr(promotion, "time", types.SimpleNamespace(time=lambda: float(pushed_version)))
    tf.io.gfile.rmtree(summary.pushed_path)
    promoted = promote(config, model_uri, reason="restore after a manual cleanup", user="tester")
    assert promoted.version > pushed_version
    assert promoted.path == f"{serving}/{promoted.version}" and serving_versions(serving) == [promoted.version]
    (version,) = inventory(config).versions
    assert (version.path, version.action, version.reason) == (
        promoted.path,
        "promote",
        "restore after a manual cleanup",
    )
    # The whole serving folder emptied: ML Metadata's record of both versions still keeps them out.
    tf.io.gfile.rmtree(serving)
    again = promote(config, model_uri, reason="restore after wiping the folder", user="tester")
    assert again.version > promoted.version and serving_versions(serving) == [again.version]
    (version,) = inventory(config).versions
    assert (version.version, version.action, version.reason) == (again.version, "promote", again.reason)
    # Each promotion's record, in the remote root, in its own folder (the clock gave both the same time).
    assert len(tf.io.gfile.glob(f"{ram_root}/root/sparse_ae.ManualPromotion/*/blessing/BLESSED")) == 2
    assert not os.path.exists("ram:")  # nothing went to a local folder named after the URI


def _check_the_report_is_read_and_written_on_the_remote_root(config, metadata, summary, capsys) -> None:
    """`sparse-ae report` on the remote root: every section read from the run's remote artifacts, the
    page and its figures written beside them, nothing left out."""
    from pipeline.cli import main
    from sparse_ae.storage import read_text

    capsys.readouterr()
    assert main(["report", "--pipeline-root", config.pipeline_root, "--set", f"metadata_path={metadata}"]) == 0
    page = capsys.readouterr().out.strip().splitlines()[-1]
    assert page.startswith(f"{config.pipeline_root}/reports/") and page.endswith("/report.html"), page
    folder = os.path.dirname(page)
    assert set(tf.io.gfile.listdir(folder)) == {
        "report.html",
        "report_data.json",
        "class_psnr.png",
        "reconstructions.png",
        "training_curves.png",
        "code_sparsity.png",
    }
    assert all(tf.io.gfile.stat(os.path.join(folder, name)).length > 0 for name in tf.io.gfile.listdir(folder))
    data = json.loads(read_text(os.path.join(folder, "report_data.json")))
    assert data["missing"] == []  # training curves, sample, statistics: each read from ram://
    assert data["run_id"] == summary.run_id and data["training"]["history"]["psnr"]
    assert data["statistics"]["eval"]["examples"] == summary.example_count
    assert data["sparsity"]["sample_count"] == summary.example_count
    assert summary.pushed_path in read_text(page)

    # Without metadata_path the store would be remote, which sqlite cannot be: one line, exit 2.
    assert main(["report", "--pipeline-root", config.pipeline_root]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "metadata_path" in error and "remote" in error, error


def test_a_local_run_with_a_remote_root_and_no_local_store_is_refused_before_anything_runs(ram_root):
    """sqlite needs a local file: <remote root>/metadata.sqlite would have been a local folder named
    'ram:/...' (os.makedirs on the URI) holding a store no later command finds."""
    from pipeline.local_runner import run_local
    from pipeline_config import load_config
    from sparse_ae.errors import ConfigError

    with pytest.raises(ConfigError, match="metadata_path=FILE"):
        run_local(load_config([f"pipeline_root={ram_root}/root", f"serving_dir={ram_root}/serving"]))
    assert not os.path.exists("ram:") and not tf.io.gfile.exists(f"{ram_root}/root")
