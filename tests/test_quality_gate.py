"""The gate's quality conditions beyond PSNR, on real LocalDagRunner runs (garment_shapes/small):
a code that misses sparsity_target beyond the tolerance, and a model below a required gain over
the linear baseline, are refused, and the summary and the report say which condition failed."""

import pytest
from helpers import LENIENT_GATE, small_pipeline_overrides

from pipeline.local_runner import run_local
from pipeline.run_summary import format_summary, summarize_run
from pipeline_config import load_config

pytestmark = pytest.mark.e2e  # every test here reads a pipeline run


@pytest.fixture(scope="module")
def gated_runs(garment_data_dir, tmp_path_factory):
    """Two runs on one root: (1) no sparsity penalty and a 1 % tolerance around sparsity_target;
    (2) the same model (from cache) with the sparsity check off and a gain over PCA of 50 dB required."""
    root = tmp_path_factory.mktemp("gate")
    # sparsity_weight=0: nothing pulls the sigmoid code's mean (about 0.5 at the start) to 0.05.
    overrides = small_pipeline_overrides(root, garment_data_dir, epochs=1) + LENIENT_GATE + ["model.sparsity_weight=0"]
    config = load_config(overrides + ["gate.sparsity_tolerance=0.01"])
    metadata, name = config.absolute().resolved_metadata_path, config.pipeline_name
    run_local(config)
    sparse = summarize_run(metadata, name)
    run_local(load_config(overrides + ["gate.sparsity_tolerance=none", "gate.min_gain_over_linear=50"]))
    linear = summarize_run(metadata, name)
    return {"sparsity": sparse, "linear": linear, "root": config.absolute().pipeline_root}


def test_a_code_that_misses_the_sparsity_target_is_not_blessed(gated_runs):
    summary = gated_runs["sparsity"]
    assert summary.blessed is False and summary.pushed_path is None
    assert summary.mean_activation is not None and summary.activation_to_target is not None
    assert summary.activation_to_target == pytest.approx(summary.mean_activation / 0.05, rel=1e-4)
    assert abs(summary.activation_to_target - 1) > 0.01
    assert len(summary.failures) == 1  # PSNR (lenient gate) passed: only the sparsity condition failed
    failure = summary.failures[0]
    assert failure.startswith("overall: sparsity: mean latent activation is")
    side = "above" if summary.activation_to_target > 1 else "below"
    assert f"{side} the allowed" in failure and "gate.sparsity_tolerance 0.01" in failure
    text = format_summary(summary)
    assert (
        "Blessed: no" in text
        and "sparsity" in text
        and f"Mean latent activation: {summary.mean_activation:.4f}" in text
    )


def test_a_model_below_the_required_gain_over_pca_is_refused(gated_runs):
    summary, first = gated_runs["linear"], gated_runs["sparsity"]
    assert dict(summary.components)["Trainer"] == "cached" and dict(summary.components)["Evaluator"] == "complete"
    assert summary.blessed is False and summary.pushed_path is None
    assert summary.linear_baseline_psnr == pytest.approx(first.linear_baseline_psnr)
    gain = summary.psnr - summary.linear_baseline_psnr
    assert summary.failures == [
        f"overall: linear baseline: PSNR gain over PCA {gain:+.3f} dB < required +50.000 dB "
        f"(short by {50 - gain:.3f}; gate.min_gain_over_linear)"
    ]
    assert "Linear baseline (PCA, same code size)" in format_summary(summary)


def test_the_report_names_the_failed_condition_and_shows_the_three_figures(gated_runs):
    from pipeline.report import write_report

    html = open(write_report(gated_runs["root"])).read()
    summary = gated_runs["linear"]
    assert "NOT BLESSED: overall: linear baseline" in html
    assert f"Linear baseline (PCA, same code size): {summary.linear_baseline_psnr:.2f} dB" in html
    assert f"Mean latent activation {summary.mean_activation:.4f}" in html
    assert f"Eval PSNR {summary.psnr:.2f} dB" in html
