"""Every benchmark runs and writes its result file (tiny sizes; no timing is asserted)."""
import json

from benchmarks.run import main


def test_each_benchmark_runs_and_writes_its_file(garment_data_dir, tmp_path):
    assert main(["--smoke", "--data-dir", garment_data_dir, "--results-dir", str(tmp_path)]) == 0
    for name in ("train_step", "example_gen", "evaluator", "serving"):
        result = json.load(open(tmp_path / f"{name}.json"))
        assert result["benchmark"] == name and result["ratio"] > 0
        assert result["environment"]["cores"] >= 1 and result["environment"]["tfx"] == "1.16.0"
        assert {"ours", "baseline", "sizes", "goal"} <= set(result)


def test_unknown_benchmark_is_refused(tmp_path):
    assert main(["--only", "nope", "--results-dir", str(tmp_path)]) == 2
