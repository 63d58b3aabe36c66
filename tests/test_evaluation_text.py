"""One wording of a candidate's evaluation (pipeline/evaluation_text.py): the run summary, the run
report's verdict and `models` say each fact in the same words, the report and the summary with
the gate's bound when the gate is known. Records built directly: no pipeline run."""

from ml_metadata.proto import metadata_store_pb2

from pipeline.promotion import Candidate, Inventory, format_inventory
from pipeline.report.content import verdict
from pipeline.run_summary import RunSummary, format_summary
from pipeline_config import PipelineConfig

FAILURES = [
    "overall: psnr 15.200 dB < threshold 16.000 dB (short by 0.800)",
    "overall: sparsity: active units per image 9.100 > allowed 8.000 (over by 1.100; gate.max_active_units)",
]
# The gate as pipeline.evaluation.recorded_gate reads it: every key, None where not gated.
GATE = {
    "psnr_threshold": 16.0,
    "change_tolerance": 0.5,
    "class_psnr_floor": None,
    "sparsity_tolerance": 0.05,
    "max_active_units": 8.0,
    "min_hoyer": 0.7,
    "max_zeroing_cost": 0.5,
    "min_gain_over_linear": 3.0,
    "min_gain_over_full_linear": None,
}
# The lines of the summary that put the evaluation into words (the sentences of the facts, not the layout).
FACT_PREFIXES = (
    "Eval PSNR",
    "Baseline",
    "Code sparsity",
    "With only the active units",
    "Linear baseline",
    "Mean latent activation",
    "Bulk inference",
    "Manually",
)


def refused_run(**extra) -> RunSummary:
    """A run whose candidate has every figure the Evaluator and the Trainer record, refused by the gate."""
    return RunSummary(
        run_id="r",
        components=[("Trainer", "complete"), ("Evaluator", "complete")],
        psnr=15.2,
        baseline_psnr=17.0,
        example_count=500,
        active_units=9.1,
        hoyer=0.74,
        psnr_active_only=14.8,
        zeroing_cost=0.4,
        linear_baseline_psnr_at_active=12.1,
        linear_baseline_psnr=23.2,
        mean_activation=0.0512,
        activation_to_target=1.024,
        code_sparsity={"units": 64, "dead_fraction": 0.03},
        blessed=False,
        baseline_model_id=3,
        baseline_note="model 3, the live version 1796195514 (pushed by the pipeline)",
        failures=list(FAILURES),
        manual_actions=["model 4 made live by manual promotion by ann: needed now (version 1796195600)"],
        drift={
            "baseline": "statistics",
            "baseline_id": 7,
            "split": "train",
            "threshold": 0.01,
            "measured": [
                {"feature": "image", "measure": "Jensen-Shannon divergence", "value": 0.0551},
                {"feature": "label", "measure": "Jensen-Shannon divergence", "value": 0.0004},
            ],
        },
        bulk_inference={"count": 500, "flagged": 5, "threshold": 0.678209, "quantile": 0.99},
        **extra,
    )


def fact_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(FACT_PREFIXES)]


def test_the_report_says_every_fact_of_the_summary_in_the_same_words():
    """Each sentence of the terminal summary about the evaluation (PSNR and baseline, the code's
    sparsity, the zeroing cost, both linear baselines, the mean activation, bulk inference, manual
    actions) is word for word a line of the report's verdict; so is each drift figure."""
    summary = refused_run()
    text = format_summary(summary)
    said = fact_lines(text)
    assert len(said) == 9, text  # PSNR, baseline, 5 of the code, bulk inference, manual
    details = verdict(summary, {})["details"]  # no gate known: the summary of a RunSummary without one
    for line in said:
        assert line in details, f"{line!r} not in the report's details:\n" + "\n".join(details)
    drift = next(line for line in details if line.startswith("Drift of the train split"))
    features = [line.strip() for line in text.splitlines() if "Jensen-Shannon divergence" in line]
    assert len(features) == 2 and all(feature in drift for feature in features), (features, drift)
    assert features[0].endswith("EXCEEDED") and not features[1].endswith("EXCEEDED")


def test_with_the_recorded_gate_both_append_each_figures_bound():
    summary = refused_run(gate=GATE)
    said = fact_lines(format_summary(summary))
    in_report = [line for line in verdict(summary, GATE)["details"] if line.startswith(FACT_PREFIXES)]
    assert sorted(said) == sorted(in_report)  # the same sentences; each arranges them its own way
    by_prefix = {prefix: next(line for line in said if line.startswith(prefix)) for prefix in FACT_PREFIXES}
    assert by_prefix["Eval PSNR"] == (
        "Eval PSNR: 15.20 dB over 500 examples (required: at least 16 dB); baseline 17.00 dB, change -1.80 dB "
        "(allowed: a drop of at most 0.5 dB)"
    )
    assert by_prefix["Code sparsity"] == (
        "Code sparsity per image: 9.1 active units of 64 (required: at most 8), Hoyer 0.74 (required: at least 0.7), "
        "dead units 3%"
    )
    assert by_prefix["With only the active units"].endswith("0.40 dB lost (required: at most 0.5 dB lost)")
    linear = [line for line in said if line.startswith("Linear baseline")]
    assert linear == [
        "Linear baseline (PCA-9, the code's active size): 12.10 dB; the model +3.10 dB (required: at least +3 dB)",
        "Linear baseline (PCA of the full code size): 23.20 dB; the model -8.00 dB (not gated)",
    ]
    assert by_prefix["Mean latent activation"] == (
        "Mean latent activation: 0.0512, 1.02 x sparsity_target (required: within ±5% of sparsity_target)"
    )
    # A gate that records no bound at all (no readable eval_config) is unknown, not "not gated".
    unknown = dict.fromkeys(GATE)
    assert not any("gated" in line or "required" in line for line in verdict(summary, unknown)["details"])


def test_models_refuses_a_candidate_in_the_summarys_words_and_shows_its_sparsity():
    """`models` lists the gate's failed conditions as the run summary does, line for line, and the
    candidate's active units per image beside its PSNR."""
    summary = refused_run()
    candidate = Candidate(
        model_id=4,
        uri="/models/4",
        when=1.7e9,
        psnr=summary.psnr,
        active_units=summary.active_units,
        hoyer=summary.hoyer,
        blessed=False,
        threshold=16.0,
        refused_by=summary.failures,
        manual=summary.manual_actions,
    )
    table = format_inventory(Inventory(versions=[], candidates=[candidate]), PipelineConfig()).splitlines()
    text = format_summary(summary).splitlines()
    refused = [line.strip() for line in table if line.strip().startswith("refused:")]
    assert len(refused) == len(FAILURES)
    assert refused == [line.strip() for line in text[text.index("Blessed: no") + 1 :][: len(FAILURES)]]
    assert [line.strip() for line in table if "made live by" in line] == [
        line for line in text if line.startswith("Manually:")
    ]
    header = next(line for line in table if "MODEL" in line).split()
    row = next(line for line in table if line.strip().startswith("4 ")).split()
    # TRAINED (UTC) is two words in the header, and two in the row (date, time)
    assert row[header.index("ACTIVE")] == "9.1" and row[header.index("PSNR")] == "15.20"


def test_manual_actions_of_a_model_in_words():
    """The summary's `Manually:` line and `models`' line under a candidate are both made from the
    model's pushes by run_summary.manual_actions: a pipeline push is none, a promotion names who and why."""
    from pipeline.run_summary import manual_actions

    def push(**properties) -> metadata_store_pb2.Artifact:
        artifact = metadata_store_pb2.Artifact()
        for key, value in properties.items():
            artifact.custom_properties[key].string_value = value
        return artifact

    pushes = [
        push(pushed_version="1"),  # the pipeline's own push records no action
        push(action="promote", user="ann", reason="needed now", pushed_version="2"),
        push(action="rollback", user="bob", reason="bad outputs", pushed_version="3"),
    ]
    assert manual_actions(4, pushes) == [
        "model 4 made live by manual promotion by ann: needed now (version 2)",
        "model 4 made live by rollback by bob: bad outputs (version 3)",
    ]
