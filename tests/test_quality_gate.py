"""The gate's quality conditions beyond PSNR, on real LocalDagRunner runs (garment_shapes/small):
a dense code (the recipe of the default before TopK) is refused by the default sparsity conditions;
a code that misses sparsity_target beyond the tolerance, and a model below a required gain over
the linear baseline, are refused; the summary and the report say which condition failed."""

import pytest
from helpers import LENIENT_GATE, small_pipeline_overrides

from pipeline.local_runner import run_local
from pipeline.run_summary import format_summary, summarize_run
from pipeline_config import PipelineConfig, load_config

pytestmark = pytest.mark.e2e  # every test here reads a pipeline run

# The dense code the default model had until TopK: every unit on, weakly (sigmoid, no sparsity penalty).
DENSE_CODE = ["model.latent_top_k=none", "model.latent_batch_norm=false", "model.latent_activation=sigmoid"]
DEFAULT_SPARSITY_GATE = [
    f"gate.{key}={getattr(PipelineConfig().gate, key)}" for key in ("max_active_units", "min_hoyer", "max_zeroing_cost")
]


@pytest.fixture(scope="module")
def gated_runs(garment_data_dir, tmp_path_factory):
    """Three runs of one trained model on one root: (1) the default sparsity conditions; (2) from cache,
    a 1 % tolerance around sparsity_target instead; (3) from cache, a gain over PCA of 50 dB required."""
    root = tmp_path_factory.mktemp("gate")
    # sparsity_weight=0: nothing pulls the sigmoid code's mean (about 0.5 at the start) to 0.05.
    overrides = (
        small_pipeline_overrides(root, garment_data_dir, epochs=1)
        + LENIENT_GATE
        + DENSE_CODE
        + ["model.sparsity_weight=0"]
    )
    config = load_config(overrides + DEFAULT_SPARSITY_GATE)
    metadata, name = config.absolute().resolved_metadata_path, config.pipeline_name
    run_local(config)
    dense = summarize_run(metadata, name)
    run_local(load_config(overrides + ["gate.sparsity_tolerance=0.01"]))
    sparse = summarize_run(metadata, name)
    run_local(load_config(overrides + ["gate.min_gain_over_linear=50"]))
    linear = summarize_run(metadata, name)
    return {"dense": dense, "sparsity": sparse, "linear": linear, "root": config.absolute().pipeline_root}


def test_a_dense_code_is_refused_by_the_default_gate_which_names_the_conditions(gated_runs):
    summary = gated_runs["dense"]
    assert summary.blessed is False and summary.pushed_path is None
    assert summary.active_units > 8 and summary.hoyer < 0.7
    assert summary.code_sparsity["units"] == 64 and summary.code_sparsity["active_units"] == pytest.approx(
        summary.active_units, rel=1e-3
    )  # the Trainer's measurement and the Evaluator's agree on the same split
    failures = "\n".join(summary.failures)
    assert (
        f"overall: sparsity: active units per image {summary.active_units:.3f} > allowed 8.000 "
        f"(over by {summary.active_units - 8:.3f}; gate.max_active_units)" in failures
    )
    assert (
        f"Hoyer sparsity per image {summary.hoyer:+.3f} < required +0.700" in failures and "gate.min_hoyer" in failures
    )
    text = format_summary(summary)
    assert (
        f"Code sparsity per image: {summary.active_units:.1f} active units of 64 (required: at most 8), "
        f"Hoyer {summary.hoyer:.2f} (required: at least 0.7)" in text
    )
    assert "Linear baseline (PCA-" in text and "Blessed: no" in text


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
    gain = summary.psnr - summary.linear_baseline_psnr_at_active
    assert summary.failures == [
        f"overall: linear baseline: PSNR gain over PCA at the code's active size {gain:+.3f} dB < required "
        f"+50.000 dB (short by {50 - gain:.3f}; gate.min_gain_over_linear)"
    ]
    k = max(1, round(summary.active_units))
    assert f"Linear baseline (PCA-{k}, the code's active size)" in format_summary(summary)
    assert "Linear baseline (PCA of the full code size)" in format_summary(summary)


def test_the_report_names_the_failed_condition_and_shows_the_three_figures(gated_runs):
    from pipeline.report import write_report

    html = open(write_report(gated_runs["root"])).read()
    summary = gated_runs["linear"]
    assert "NOT BLESSED: overall: linear baseline" in html
    assert f"Linear baseline (PCA of the full code size): {summary.linear_baseline_psnr:.2f} dB" in html
    assert f"Code sparsity per image: {summary.active_units:.1f} active units" in html
    assert f"Linear baseline (PCA-{max(1, round(summary.active_units))}, the code" in html
    assert f"Mean latent activation: {summary.mean_activation:.4f}" in html
    assert f"Eval PSNR: {summary.psnr:.2f} dB" in html
