"""The run report: written by `sparse-ae pipeline run`, rebuilt by `sparse-ae report`, opened in a real
headless browser (Debian's chromium), and its plotted numbers compared with the artifacts read
independently (TFMA's output, the Trainer's metrics.json, the exported SavedModel on the eval examples).

One pipeline run (garment_shapes/small, 2 epochs) through the real command, shared by every test;
a second, failing run (the Trainer refuses a GPU that does not exist) for the report of a broken run.
"""

import glob
import html.parser
import json
import logging
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from helpers import run_cli, set_args, small_pipeline_overrides

from pipeline.report import report_dir, write_report
from pipeline.report.render import DATA_FILE, FIGURES, HTML_FILE
from pipeline.run_summary import RunSummary, open_store, summarize_run
from pipeline_config import load_config

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "run scripts/install_browser.sh (apt-get install -y --no-install-recommends chromium), "
    "or set SPARSE_AE_CHROMIUM to a chromium binary"
)


@pytest.fixture(scope="module")
def run(garment_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    overrides = small_pipeline_overrides(root, garment_data_dir, epochs=2) + ["gate.psnr_threshold=10"]
    cli = run_cli("pipeline", "run", *set_args(overrides))
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
    config = load_config(overrides).absolute()
    summary = summarize_run(config.resolved_metadata_path, config.pipeline_name)
    folder = report_dir(config.pipeline_root, summary.run_id)
    return {
        "cli": cli,
        "config": config,
        "overrides": overrides,
        "summary": summary,
        "dir": folder,
        "data": json.load(open(os.path.join(folder, DATA_FILE))),
    }


def artifact_uri(run, type_name: str) -> str:
    """The one artifact of a type in the run's store, found without the report's code."""
    artifacts = open_store(run["config"].resolved_metadata_path).get_artifacts_by_type(type_name)
    assert len(artifacts) == 1, [a.uri for a in artifacts]
    return artifacts[0].uri


# --- written by the pipeline run, rebuilt by the command -------------------------------------------------


@pytest.mark.e2e
def test_pipeline_run_writes_the_report_and_prints_its_path(run):
    match = re.search(r"^Report: (\S+) \(\d+\.\d s\)$", run["cli"].stdout, re.MULTILINE)
    assert match, run["cli"].stdout[-2000:]
    assert match.group(1) == os.path.join(run["dir"], HTML_FILE)
    assert run["dir"].startswith(os.path.join(run["config"].pipeline_root, "reports") + os.sep)
    assert sorted(os.listdir(run["dir"])) == sorted([HTML_FILE, DATA_FILE, *FIGURES.values()])


@pytest.mark.e2e
def test_report_is_self_contained(run):
    """Only relative references to files in its folder: no CDN, no script, nothing to fetch."""

    class References(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.references = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.references += [value for name, value in attrs if name in ("src", "href")]

    parser = References()
    parser.feed(open(os.path.join(run["dir"], HTML_FILE)).read())
    assert "script" not in parser.tags and "link" not in parser.tags
    assert sorted(r for r in parser.references if r.endswith(".png")) == sorted(FIGURES.values())
    for reference in parser.references:
        assert "/" not in reference and ":" not in reference, reference
        assert os.path.isfile(os.path.join(run["dir"], reference)), reference


@pytest.mark.e2e
def test_report_command_rebuilds_the_same_report(run, tmp_path, capsys):
    from pipeline.cli import main

    code = main(
        [
            "report",
            "--pipeline-root",
            run["config"].pipeline_root,
            "--run",
            run["summary"].run_id,
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / HTML_FILE)
    rebuilt = json.load(open(tmp_path / DATA_FILE))
    original = dict(run["data"])
    assert rebuilt.pop("generated") and original.pop("generated")
    assert rebuilt == original
    assert sorted(os.listdir(tmp_path)) == sorted(os.listdir(run["dir"]))


@pytest.mark.e2e
def test_report_command_errors_are_one_line_and_exit_2(run, tmp_path, capsys):
    from pipeline.cli import main

    root = run["config"].pipeline_root
    for argv, expected in (
        (["--pipeline-root", root, "--run", "no-such-run"], "no run 'no-such-run'"),
        (["--pipeline-root", str(tmp_path / "nowhere")], "no pipeline root"),
        (["--pipeline-root", str(tmp_path)], "no ML Metadata store"),
    ):
        assert main(["report", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err


# --- the plotted numbers are the artifacts' --------------------------------------------------------------


@pytest.mark.e2e
def test_class_psnr_bars_are_tfmas_per_slice_values_and_the_line_is_the_gate(run):
    import tensorflow_model_analysis as tfma

    expected = {}
    for slice_metrics in tfma.load_metrics(artifact_uri(run, "ModelEvaluation")):
        keys = slice_metrics.slice_key.single_slice_keys
        for item in slice_metrics.metric_keys_and_values:
            if item.key.name == "psnr" and not item.key.is_diff and len(keys) == 1 and keys[0].column == "label":
                expected[int(keys[0].int64_value)] = item.value.double_value.value
    assert sorted(expected) == list(range(10))
    data = run["data"]
    assert {row["label"]: row["psnr"] for row in data["class_psnr"]} == expected
    assert data["gate"]["psnr_threshold"] == run["config"].gate.psnr_threshold == 10.0
    assert data["gate"]["change_tolerance"] == run["config"].gate.change_tolerance

    figure = _figures(run)["class_psnr"]
    axis = figure.axes[0]
    bars = [patch for patch in axis.patches if patch.get_gid() == "candidate"]
    assert [bar.get_height() for bar in bars] == [expected[label] for label in range(10)]
    threshold = [line for line in axis.get_lines() if line.get_gid() == "threshold"]
    assert len(threshold) == 1 and set(threshold[0].get_ydata()) == {10.0}


@pytest.mark.e2e
def test_training_curves_are_the_trainers_metrics_history(run):
    metrics = json.load(open(os.path.join(artifact_uri(run, "ModelRun"), "metrics.json")))
    data = run["data"]["training"]
    assert data["history"] == metrics["history"] and len(metrics["history"]["loss"]) == 2
    assert data["sparsity_target"] == run["config"].model.sparsity_target
    lines = {line.get_gid(): line for axis in _figures(run)["training"].axes for line in axis.get_lines()}
    for name in ("loss", "recon_loss", "kl_penalty", "psnr", "mean_activation"):
        for key in (name, f"val_{name}"):
            assert list(lines[key].get_ydata()) == metrics["history"][key], key
            assert list(lines[key].get_xdata()) == [1, 2]
    assert set(lines["sparsity_target"].get_ydata()) == {run["config"].model.sparsity_target}


@pytest.mark.e2e
def test_latent_means_and_reconstructions_come_from_the_trained_model(run, garment_data_dir):
    """Recomputed here from the Model artifact's SavedModel on the eval Examples, parsed by hand."""
    model = tf.saved_model.load(os.path.join(artifact_uri(run, "Model"), "Format-Serving"))
    files = sorted(glob.glob(os.path.join(artifact_uri(run, "Examples"), "Split-eval", "*.gz")))
    images, labels = [], []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        features = tf.train.Example.FromString(record).features.feature
        images.append(np.array(features["image"].int64_list.value, np.uint8).reshape(28, 28, 1))
        labels.append(features["label"].int64_list.value[0])
    outputs = model.signatures["reconstruct_uint8"](images=tf.constant(np.stack(images)))
    sparsity = run["data"]["sparsity"]
    assert sparsity["sample_count"] == len(images) == 500  # garment_shapes/small: the whole eval split
    np.testing.assert_allclose(sparsity["unit_means"], outputs["latent"].numpy().mean(axis=0), atol=1e-6)
    assert sparsity["sparsity_target"] == run["config"].model.sparsity_target
    # The sampled PSNR over the whole eval split is the Evaluator's figure.
    assert abs(float(outputs["psnr"].numpy().mean()) - run["summary"].psnr) < 0.1
    for row in run["data"]["reconstructions"]:
        assert len(row["indices"]) == 4 and all(labels[i] == row["label"] for i in row["indices"])
        np.testing.assert_allclose(row["psnr"], outputs["psnr"].numpy()[row["indices"]], atol=1e-4)

    # The sparsity figure: active units per image against the Trainer's eval-split unit scales.
    codes = outputs["latent"].numpy()
    scale = np.asarray(sparsity["unit_scale"])
    np.testing.assert_allclose(scale, codes.max(axis=0), rtol=1e-5)  # the eval split is the whole sample here
    active = ((codes > 0.1 * scale) & (scale > 1e-6)).sum(axis=1)
    per_image = _figures(run)["sparsity"].axes[0]
    counts = [patch.get_height() for patch in per_image.patches]
    assert counts == list(np.bincount(active, minlength=len(counts))[: len(counts)])
    assert sum(counts) == 500


@pytest.mark.e2e
def test_statistics_lineage_and_verdict_in_the_data(run):
    data, summary = run["data"], run["summary"]
    assert data["statistics"]["train"]["examples"] == 2000 and data["statistics"]["eval"]["examples"] == 500
    assert data["statistics"]["eval"]["features"]["image"]["max"] <= 255
    assert data["verdict"]["status"] == "blessed"
    assert data["verdict"]["headline"].startswith(f"BLESSED and pushed to {summary.pushed_path}")
    lineage = {row["what"]: row for row in data["lineage"]}
    assert lineage["Dataset (TFDS name/config:version)"]["value"] == "garment_shapes/small:1.0.0"
    assert lineage["Model (candidate)"]["where"] == artifact_uri(run, "Model")
    assert lineage["Pushed version"]["value"] == f"version {os.path.basename(summary.pushed_path)}"
    assert data["missing"] == []


_FIGURES_CACHE: dict = {}


def _figures(run):
    """The report's figures drawn again from the gathered data, as write_report draws them."""
    if not _FIGURES_CACHE:
        from pipeline.report.content import gather
        from pipeline.report.render import figures

        _FIGURES_CACHE.update(figures(gather(run["config"].pipeline_root, run["summary"].run_id)))
    return _FIGURES_CACHE


# --- what a person sees: the report in a real browser ---------------------------------------------------


def chromium() -> str:
    """The chromium binary; fails (never skips) with how to install it."""
    found = os.environ.get("SPARSE_AE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(f"chromium not found: {INSTALL_HINT}")
    return found


HARNESS = """<!DOCTYPE html><html><body>
<script>
function check(frame) {
  const doc = frame.contentDocument;
  const images = Array.from(doc.images,
                            img => ({src: img.getAttribute("src"), loaded: img.complete && img.naturalWidth > 0}));
  const verdict = doc.getElementById("verdict");
  const out = document.createElement("pre");
  out.id = "result";
  out.textContent = JSON.stringify({title: doc.title, images: images, verdict: verdict ? verdict.innerText : null,
                                    verdict_top: verdict ? verdict.getBoundingClientRect().top : null});
  document.body.appendChild(out);
}
</script>
<iframe src="report.html" width="1280" height="900" onload="check(this)"></iframe>
</body></html>
"""


def browser_check(folder: str, profile: str) -> dict:
    """Open report.html in headless chromium (inside a harness page beside it) and return, for every
    <img>, whether it loaded (complete, naturalWidth > 0), and the verdict's text and position."""
    with open(os.path.join(folder, "harness.html"), "w") as handle:
        handle.write(HARNESS)
    result = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
            "--dump-dom",
            "file://" + os.path.join(folder, "harness.html"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="result">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found, f"chromium exited {result.returncode}; no result in its DOM: {result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.e2e
def test_report_opens_in_a_browser_with_every_image_and_the_verdict(run, tmp_path):
    folder = str(tmp_path / "report")
    shutil.copytree(run["dir"], folder)
    seen = browser_check(folder, str(tmp_path / "profile"))
    assert sorted(image["src"] for image in seen["images"]) == sorted(FIGURES.values())
    assert [image["src"] for image in seen["images"] if not image["loaded"]] == []
    assert seen["verdict"].startswith("BLESSED and pushed to"), seen["verdict"]
    assert 0 <= seen["verdict_top"] < 400  # at the top, seen without scrolling

    # A screenshot of the page as rendered: not blank (text, figures and the verdict's colour).
    from PIL import Image

    shot = tmp_path / "page.png"
    subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1280,3000",
            f"--screenshot={shot}",
            "file://" + os.path.join(folder, HTML_FILE),
        ],
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.shape[:2] == (3000, 1280)
    assert (pixels.std(axis=2) > 30).mean() > 0.002  # coloured pixels: the verdict box and the figures
    assert (pixels.mean(axis=2) < 128).mean() > 0.01  # dark pixels: text and images


@pytest.mark.e2e
def test_browser_check_catches_a_missing_image(run, tmp_path):
    """The check above can fail: with one PNG deleted it reports exactly that image as not loaded."""
    folder = str(tmp_path / "report")
    shutil.copytree(run["dir"], folder)
    os.remove(os.path.join(folder, FIGURES["sparsity"]))
    seen = browser_check(folder, str(tmp_path / "profile"))
    assert [image["src"] for image in seen["images"] if not image["loaded"]] == [FIGURES["sparsity"]]


# --- robust: a failed run, a report that cannot be written ---------------------------------------------


@pytest.mark.e2e
def test_report_of_a_failed_run_shows_what_exists_and_what_is_missing(run, capsys):
    """The Trainer fails (visible_gpus names a GPU that is not there): the run exits 1 and its report
    says so, keeps the data statistics, and lists the missing parts."""
    import absl.logging

    from pipeline.cli import ComponentProgress, main

    overrides = run["overrides"] + ["model.visible_gpus=7"]
    verbosity = absl.logging.get_verbosity()
    try:
        code = main(["pipeline", "run", *sum((["--set", item] for item in overrides), [])])
    finally:  # the command sets absl's verbosity and adds a progress filter; leave this process as it was
        absl.logging.set_verbosity(verbosity)
        logger = logging.getLogger("absl")
        for item in [f for f in logger.filters if isinstance(f, ComponentProgress)]:
            logger.removeFilter(item)
    captured = capsys.readouterr()
    out = captured.out
    assert code == 1, out + captured.err
    path = re.search(r"^Report: (\S+) \(", out, re.MULTILINE).group(1)
    data = json.load(open(os.path.join(os.path.dirname(path), DATA_FILE)))
    assert data["run_id"] != run["summary"].run_id, out + captured.err
    assert data["verdict"]["status"] == "failed" and data["verdict"]["headline"].startswith("RUN FAILED at Trainer")
    assert any(line.startswith("Training curves") and "Trainer: failed" in line for line in data["missing"])
    assert "Failed at Trainer: ConfigError: visible_gpus=[7]" in " ".join(data["verdict"]["details"])
    assert any(line.startswith("Per-class PSNR") and "Evaluator did not run" in line for line in data["missing"])
    assert data["statistics"]["eval"]["examples"] == 500 and data["training"] is None
    assert sorted(os.listdir(os.path.dirname(path))) == sorted([DATA_FILE, HTML_FILE])
    page = open(path).read()
    assert "RUN FAILED at Trainer" in page and "Not shown" in page


@pytest.mark.e2e
def test_report_failure_after_a_run_is_a_warning_not_an_error(run, tmp_path, capsys):
    from pipeline.report.cli import report_after_run

    broken = run["config"].model_copy(
        update={"pipeline_root": str(tmp_path / "gone"), "metadata_path": str(tmp_path / "gone" / "metadata.sqlite")}
    )
    report_after_run(broken, RunSummary(run_id=run["summary"].run_id, components=[]))
    out = capsys.readouterr().out.strip()
    assert out.startswith("warning: run report not written: ConfigError: no pipeline root"), out


def test_verdict_in_words():
    from pipeline.report.content import verdict

    gate = {"psnr_threshold": 16.0, "change_tolerance": 0.5, "class_psnr_floor": None}
    rejected = RunSummary(
        run_id="r",
        components=[("Evaluator", "complete")],
        psnr=15.2,
        baseline_psnr=17.0,
        example_count=500,
        blessed=False,
        baseline_model_id=3,
        baseline_note="model 3, live",
        failures=[
            "overall: psnr 15.200 dB < threshold 16.000 dB (short by 0.800)",
            "overall: psnr changed by -1.800 dB against the baseline",
        ],
    )
    said = verdict(rejected, gate)
    assert said["status"] == "not-blessed"
    assert said["headline"] == "NOT BLESSED: overall: psnr 15.200 dB < threshold 16.000 dB (short by 0.800)"
    assert (
        "Eval PSNR: 15.20 dB over 500 examples (required: at least 16 dB); baseline 17.00 dB, change -1.80 dB "
        "(allowed: a drop of at most 0.5 dB)" in said["details"]
    )
    assert "Baseline: model 3, live" in said["details"]
    assert "refused: overall: psnr changed by -1.800 dB against the baseline" in said["details"]
    failed = RunSummary(
        run_id="r",
        components=[("TFDSExampleGen", "failed")],
        failure="TFDSExampleGen: DatasetUnavailableError: dataset.name='garment_shape/small': no TFDS dataset",
    )
    said = verdict(failed, gate)
    assert said["headline"] == "RUN FAILED at TFDSExampleGen: no model was evaluated"
    assert said["details"] == [f"Failed at {failed.failure}"]  # the reason ML Metadata records (pipeline/failures.py)
    nothing = verdict(RunSummary(run_id="r", components=[("Trainer", "complete")]), gate)
    assert nothing["status"] == "none" and nothing["headline"].startswith("NO VERDICT")


def test_verdict_of_a_baseline_psnr_without_the_candidates():
    """The two PSNRs are read from TFMA's output independently: a baseline's alone is shown without a change
    (it was `None - float`, a TypeError)."""
    from pipeline.report.content import verdict

    summary = RunSummary(run_id="r", components=[("Evaluator", "complete")], baseline_psnr=17.0, baseline_model_id=3)
    details = verdict(summary, {})["details"]
    assert "Eval PSNR: not measured; baseline 17.00 dB" in details and "Baseline: model 3" in details
    summary.psnr, summary.example_count = 15.2, 500
    assert (
        "Eval PSNR: 15.20 dB over 500 examples; baseline 17.00 dB, change -1.80 dB" in verdict(summary, {})["details"]
    )


def test_summary_of_an_unknown_run_is_a_lookup_error(tmp_path):
    """A run id that ML Metadata does not know: LookupError naming it, which callers report (it was an
    AttributeError on None)."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    path = str(tmp_path / "metadata.sqlite")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    metadata_store.MetadataStore(config)  # an empty store
    with pytest.raises(LookupError, match="'no-such-run'"):
        summarize_run(path, "sparse_ae", "no-such-run")


def test_report_path_is_a_folder_per_run():
    assert report_dir("/r", "2026-11-29T05:48:11.425929") == "/r/reports/2026-11-29T05_48_11.425929"


@pytest.mark.e2e
def test_write_report_default_folder(run):
    """The public API the notebook uses: latest run, default folder."""
    path = write_report(run["config"].pipeline_root)
    # The failed run (if it ran first) is the latest; either way the path is under reports/<its run>/.
    assert path.startswith(os.path.join(run["config"].pipeline_root, "reports") + os.sep) and os.path.isfile(path)


def test_gate_bounds_read_back_both_eval_config_forms():
    """The report's threshold lines come from the Evaluator's recorded eval_config: the current
    per-slice form and the form earlier runs recorded (one threshold on every slice)."""
    import tensorflow_model_analysis as tfma

    from pipeline.evaluation import eval_config, gate_bounds
    from pipeline_config import GateConfig

    current = eval_config(
        GateConfig(
            psnr_threshold=17.5,
            change_tolerance=0.25,
            class_psnr_floor=12.0,
            sparsity_tolerance=0.2,
            min_gain_over_linear=0.5,
            max_active_units=6.5,
            min_hoyer=0.6,
            max_zeroing_cost=0.25,
            min_gain_over_full_linear=-1.5,
        )
    )
    assert gate_bounds(current) == {
        "psnr_threshold": 17.5,
        "change_tolerance": 0.25,
        "class_psnr_floor": 12.0,
        "sparsity_tolerance": 0.2,
        "min_gain_over_linear": 0.5,
        "max_active_units": 6.5,
        "min_hoyer": 0.6,
        "max_zeroing_cost": 0.25,
        "min_gain_over_full_linear": -1.5,
    }
    assert gate_bounds(eval_config(GateConfig(sparsity_tolerance=None)))["sparsity_tolerance"] is None
    batched = eval_config(
        GateConfig(
            psnr_threshold=17.5,
            change_tolerance=0.25,
            class_psnr_floor=12.0,
            sparsity_tolerance=0.2,
            min_gain_over_linear=0.5,
            max_active_units=6.5,
            min_hoyer=0.6,
            max_zeroing_cost=0.25,
            min_gain_over_full_linear=-1.5,
        ),
        engine="batched",
    )
    assert gate_bounds(batched) == gate_bounds(current)  # evaluation.engine=batched records the same gate
    earlier = tfma.EvalConfig(
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(
                        class_name="MeanPrediction",
                        config='"name": "psnr"',
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 16.0}),
                            change_threshold=tfma.GenericChangeThreshold(
                                direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -0.5}
                            ),
                        ),
                    )
                ]
            )
        ]
    )
    assert gate_bounds(earlier) == {
        "psnr_threshold": 16.0,
        "change_tolerance": 0.5,
        "class_psnr_floor": None,
        "sparsity_tolerance": None,
        "min_gain_over_linear": None,
        "max_active_units": None,
        "min_hoyer": None,
        "max_zeroing_cost": None,
        "min_gain_over_full_linear": None,
    }
