"""Run the benchmarks and write benchmarks/results/<name>.json; `sparse-ae bench` calls this.

Quick (default, a few minutes): smaller sizes. --full: the sizes the goals are stated for,
plus the end-to-end comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from benchmarks.common import RESULTS_DIR, format_figure, write_result
from pipeline import process


def suites(full: bool, smoke: bool = False) -> dict[str, Callable[[str | None], dict]]:
    """name -> function(data_dir) returning the result dictionary."""
    from benchmarks import evaluator, example_gen, serving, train_step

    if smoke:  # tiny sizes on garment_shapes/small: checks that every benchmark runs, measures nothing
        small = "garment_shapes/small"
        return {
            "train_step": lambda d: train_step.run(d, dataset=small, epochs=1, limit=1024),
            "example_gen": lambda d: example_gen.run(d, dataset=small),
            "evaluator": lambda d: evaluator.run(d, sizes=[250, 500], dataset=small, repeats=1, profiled=False),
            "serving": lambda d: serving.run(d, dataset=small),
        }
    table: dict[str, Callable[[str | None], dict]] = {
        "train_step": lambda d: train_step.run(d, epochs=8 if full else 3, limit=None if full else 20_000),
        "example_gen": lambda d: example_gen.run(d, dataset="garment_shapes/full" if full else "garment_shapes/small"),
        "evaluator": lambda d: evaluator.run(
            d, sizes=[10_000, 20_000, 30_000, 40_000] if full else [2_000, 5_000, 10_000]
        ),
        "serving": lambda d: serving.run(d),
    }
    if full:
        from benchmarks import end_to_end

        table["end_to_end"] = lambda d: end_to_end.run(d)
        table["growth"] = lambda d: end_to_end.growth(d)
    return table


def format_table(results_dir: str = RESULTS_DIR) -> str:
    """A Markdown table of the latest result files."""
    rows = [
        "| Benchmark | Ratio (ours / baseline) | Goal | Sizes | Measured |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in sorted(os.listdir(results_dir)) if os.path.isdir(results_dir) else []:
        if not name.endswith(".json"):
            continue
        result = json.load(open(os.path.join(results_dir, name)))
        rows.append(
            f"| {result['benchmark']} | {format_figure(result.get('ratio'))} | {result.get('goal', '')} | "
            f"{json.dumps(result.get('sizes', {}))} | {result['measured_at']} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparse-ae bench", description=__doc__)
    parser.add_argument("--full", action="store_true", help="goal-sized runs, end to end included")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for tests: runs everything, measures nothing")
    parser.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    parser.add_argument("--data-dir", default="tfds_data", help="TFDS data_dir (garment_shapes is generated there)")
    parser.add_argument("--results-dir", default=RESULTS_DIR)
    args = parser.parse_args(argv)
    process.setup()  # Keras 2 for TFX, before a benchmark imports TensorFlow (pipeline/process.py)
    table = suites(args.full, args.smoke)
    unknown = sorted(set(args.only or []) - set(table))
    if unknown:
        print(f"sparse-ae bench: error: unknown benchmark(s) {unknown}; known: {sorted(table)}", file=sys.stderr)
        return 2
    for name in args.only or list(table):
        print(f"[bench] {name} ...", flush=True)
        result = table[name](args.data_dir)
        path = write_result(name, result, args.results_dir)
        print(
            f"[bench] {name}: ratio {format_figure(result['ratio'])} (goal {result['goal']}) -> {path}",
            flush=True,
        )
    print(format_table(args.results_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
