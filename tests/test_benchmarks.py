"""Every benchmark runs and writes its result file (tiny sizes; no timing is asserted: every
figure is either a positive number or marked not measurable)."""

import json
import math

import pytest

from benchmarks.common import NOT_MEASURABLE, fit_line, format_figure, safe_ratio
from benchmarks.run import main


def positive_or_not_measurable(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value) and value > 0)


@pytest.mark.slow  # the smoke benchmarks run ExampleGen, TFMA and training
def test_each_benchmark_runs_and_writes_its_file(garment_data_dir, tmp_path):
    assert main(["--smoke", "--data-dir", garment_data_dir, "--results-dir", str(tmp_path)]) == 0
    for name in ("train_step", "example_gen", "evaluator", "serving"):
        result = json.load(open(tmp_path / f"{name}.json"))
        assert result["benchmark"] == name and positive_or_not_measurable(result["ratio"])
        assert result["environment"]["cores"] >= 1 and result["environment"]["tfx"] == "1.16.0"
        assert {"ours", "baseline", "sizes", "goal"} <= set(result)

    evaluator = json.load(open(tmp_path / "evaluator.json"))
    for side in ("ours", "baseline"):
        fit = evaluator[side]
        assert positive_or_not_measurable(fit["per_example_ms"]) and positive_or_not_measurable(fit["fixed_s"])
        assert fit["per_example_ms"] is not None or fit["note"].startswith(NOT_MEASURABLE)
        assert sorted(map(int, fit["seconds"])) == [250, 500] and fit["samples"] == 2
    assert set(evaluator["engines"]) == {"batched", "tfma"}  # evaluation.engine: the new path beside TFMA's
    for fit in evaluator["engines"].values():
        assert positive_or_not_measurable(fit["ratio"])
        assert sorted(map(int, fit["seconds"])) == [250, 500]


@pytest.mark.parametrize(
    "samples",
    [
        {500: 4.0, 1000: 3.0},  # two points, the larger faster: what a load spike gives
        {250: [5.0, 3.0], 500: [3.1, 4.9], 1000: [4.0, 4.1]},  # flat within the noise
    ],
)
def test_noise_is_not_measurable_rather_than_a_negative_cost(samples):
    fit = fit_line(samples)
    assert fit["per_example_ms"] is None and fit["note"].startswith(NOT_MEASURABLE)
    assert safe_ratio(fit["per_example_ms"], 0.01) is None and format_figure(None) == NOT_MEASURABLE


def test_a_clear_linear_cost_is_measured():
    fit = fit_line({1000: [1.0, 1.02], 2000: [2.0, 1.98], 4000: [4.01, 3.99]})
    assert fit["per_example_ms"] == pytest.approx(1.0, rel=0.02) and fit["samples"] == 6
    assert safe_ratio(-2.0, 1.0) is None and safe_ratio(1.0, 0.0) is None and safe_ratio(3.0, 1.5) == 2.0


def test_unknown_benchmark_is_refused(tmp_path):
    assert main(["--only", "nope", "--results-dir", str(tmp_path)]) == 2


def test_end_to_end_compares_median_runs_and_keeps_every_sample():
    from benchmarks.end_to_end import _median_run

    samples = [
        {"seconds": 64.0, "peak_memory_gib": 0.8, "peak_memory_all_processes_gib": 0.9, "profile": {"Trainer": 50}},
        {"seconds": 41.0, "peak_memory_gib": 0.9, "peak_memory_all_processes_gib": 0.8, "profile": {"Trainer": 30}},
        {"seconds": 49.0, "peak_memory_gib": 0.7, "peak_memory_all_processes_gib": 0.7, "profile": {"Trainer": 35}},
    ]
    median = _median_run(samples)
    assert median["seconds"] == 49.0 and median["profile"] == {"Trainer": 35}  # the median run's own profile
    assert median["seconds_samples"] == [64.0, 41.0, 49.0]
    assert median["peak_memory_gib"] == 0.9 and median["peak_memory_all_processes_gib"] == 0.9  # the worst run
