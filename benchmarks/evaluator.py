"""Evaluator cost: TFMA computing mean PSNR (overall and per class) with the pipeline's EvalConfig,
with each evaluation.engine (batched: pipeline/evaluator_module.py; tfma: TFMA's default
extractors), against `model.evaluate` on the same records, at several sizes with repeats; fixed cost and cost
per example are the intercept and slope of the least-squares line through all the samples, and
"not measurable" (None) where timing noise outweighs the cost (benchmarks/common.py, fit_line)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from benchmarks import fixtures
from benchmarks.common import IN_MEMORY_BEAM, fit_line, safe_ratio
from pipeline_config import GateConfig
from sparse_ae.config import SparseAEConfig
from sparse_ae.data import example_pairs

ENGINES = ("batched", "tfma")


def tfma_seconds(model_path: str, files: str, output: str, engine: str = "tfma") -> float:
    """One TFMA run as the Evaluator makes it with evaluation.engine=engine (no baseline model)."""
    import tensorflow_model_analysis as tfma

    from pipeline.evaluation import eval_config

    config = eval_config(GateConfig(), engine)
    config.metrics_specs[0].metrics[0].per_slice_thresholds[0].threshold.ClearField("change_threshold")  # no baseline
    started = time.perf_counter()
    shared = tfma.default_eval_shared_model(model_path, eval_config=config)
    extractors = None
    if engine == "batched":
        from pipeline.evaluator_module import custom_extractors

        extractors = custom_extractors(shared, tfma.utils.update_eval_config_with_defaults(config))
    tfma.run_model_analysis(
        shared,
        config,
        data_location=files,
        file_format="tfrecords",
        output_path=output,
        extractors=extractors,
        pipeline_options=PipelineOptions(list(IN_MEMORY_BEAM)),
    )
    return time.perf_counter() - started


# Where TFMA's time goes: (file suffix, function) whose cumulative profile time is summed per part.
# The parts do not nest in one another; what they leave out is mostly Beam's own per-element work.
_PROFILE_PARTS = {
    "beam_pipeline_construction": [
        ("tensorflow_model_analysis/api/model_eval_lib.py", "ExtractEvaluateAndWriteResults"),
        ("apache_beam/pipeline.py", "to_runner_api"),
    ],
    "model_load": [("tensorflow_model_analysis/api/types.py", "load")],
    "predict_batched": [
        ("tensorflow_model_analysis/utils/model_util.py", "process"),
        # evaluation.engine=batched: its prediction DoFn (the largest `process` there)
        ("pipeline/evaluator_module.py", "process"),
    ],
    "unbatch_to_examples": [("tensorflow_model_analysis/extractors/unbatch_extractor.py", "_extract_unbatched_inputs")],
    "slicing_per_example": [
        ("tensorflow_model_analysis/extractors/slice_key_extractor.py", "process"),
        ("tensorflow_model_analysis/slicer/slicer_lib.py", "process"),
    ],
    "metrics_per_example_per_slice": [
        ("tensorflow_model_analysis/evaluators/metrics_plots_and_validations_evaluator.py", "process"),
        ("tensorflow_model_analysis/evaluators/metrics_plots_and_validations_evaluator.py", "add_input"),
    ],
}


def tfma_profile(model_path: str, files: str, output: str, engine: str = "tfma") -> dict[str, float]:
    """One TFMA run under cProfile: seconds per part of _PROFILE_PARTS (profiler overhead included)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    total = profiler.runcall(tfma_seconds, model_path, files, output, engine)
    # Stats.stats is undocumented and missing from typeshed; get_stats_profile() keys by function name alone,
    # merging the same-named functions of different files that _PROFILE_PARTS tells apart.
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

    def seconds(suffix: str, function: str) -> float:
        # Same-named functions of one file may nest (Pipeline.to_runner_api calls the transforms'
        # to_runner_api): the largest entry is the outermost.
        return max(
            [
                cumulative
                for (path, _, name), (_, _, _, cumulative, _) in stats.items()
                if path.endswith(suffix) and name == function
            ],
            default=0.0,
        )

    parts = {part: sum(seconds(*function) for function in functions) for part, functions in _PROFILE_PARTS.items()}
    parts["beam_per_element_and_other"] = total - sum(parts.values())
    return {"total_s": total, **parts}


def evaluate_seconds(model, files: list[str], config: SparseAEConfig) -> float:
    import tensorflow as tf

    started = time.perf_counter()
    data = example_pairs(tf.data.TFRecordDataset(files, compression_type="GZIP"), config, training=False)
    model.evaluate(data, verbose=0)
    return time.perf_counter() - started


def run(
    data_dir: str | None,
    sizes: Sequence[int] = (10_000, 20_000, 30_000, 40_000),
    dataset: str = "garment_shapes/full",
    repeats: int = 2,
    profiled: bool = True,
) -> dict:
    config = SparseAEConfig()
    images, labels = fixtures.dataset_arrays(dataset, "train", data_dir, limit=max(sizes))
    with tempfile.TemporaryDirectory() as work:
        model = fixtures.trained_model(images[:10_000], config)  # weights do not change the cost
        model_path = fixtures.exported(model, work, images[:10_000])
        tfma_times: dict[str, dict[int, list[float]]] = {engine: {size: [] for size in sizes} for engine in ENGINES}
        evaluate_times: dict[int, list[float]] = {size: [] for size in sizes}
        evaluate_seconds(
            model, [fixtures.write_examples(images[:256], labels[:256], os.path.join(work, "w.gz"))], config
        )  # warm-up: tracing
        paths = {
            size: fixtures.write_examples(images[:size], labels[:size], os.path.join(work, f"eval_{size}.gz"))
            for size in sizes
        }
        for repeat in range(repeats):  # sizes interleaved: a slow spell of the machine hits every size
            for size in sizes:
                for engine in ENGINES:
                    output = os.path.join(work, f"{engine}_{size}_{repeat}")
                    tfma_times[engine][size].append(tfma_seconds(model_path, paths[size], output, engine))
                evaluate_times[size].append(evaluate_seconds(model, [paths[size]], config))
        largest = paths[max(sizes)]
        profiles = (
            {
                engine: tfma_profile(model_path, largest, os.path.join(work, f"{engine}_profile"), engine)
                for engine in ENGINES
            }
            if profiled
            else {}
        )
    fits = {engine: fit_line(tfma_times[engine]) for engine in ENGINES}
    baseline = fit_line(evaluate_times)
    engines = {
        engine: {
            "name": f"TFMA, evaluation.engine={engine} (pipeline EvalConfig)",
            "seconds": tfma_times[engine],
            **fits[engine],
            "ratio": safe_ratio(fits[engine]["per_example_ms"], baseline["per_example_ms"]),
            **({"profile_at_largest_size": profiles[engine]} if engine in profiles else {}),
        }
        for engine in ENGINES
    }
    return {
        "description": "TFMA mean PSNR overall + per label (both evaluation engines) vs model.evaluate on "
        "the same tf.Examples",
        "sizes": {"records": list(sizes), "repeats": repeats, "dataset": dataset},
        "ours": engines["batched"],  # the pipeline's default engine
        "engines": engines,
        "baseline": {"name": "model.evaluate via tf.data", "seconds": evaluate_times, **baseline},
        "ratio": engines["batched"]["ratio"],  # None: not measurable
        "goal": "per-example cost <= 3x baseline; fixed cost < 3 s",
    }
