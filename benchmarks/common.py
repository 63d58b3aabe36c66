"""Shared benchmark plumbing: environment facts and the result file."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.beam_args import beam_pipeline_args
from pipeline_config import BEAM_RUNNER_TEMPLATES, PipelineConfig

NOT_MEASURABLE = "not measurable"  # how a None figure is printed

# The Beam options the pipeline gives its Beam components on small data (pipeline/beam_args.py),
# the dependency flag included: without it TFX builds a package of itself per executor.
IN_MEMORY_BEAM = tuple(beam_pipeline_args(PipelineConfig(beam_pipeline_args=BEAM_RUNNER_TEMPLATES["direct_in_memory"])))

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def environment() -> dict[str, Any]:
    """Library versions and machine facts that the figures depend on."""
    import apache_beam
    import tensorflow as tf
    import tf_keras
    import tfx

    return {
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "tfx": tfx.__version__,
        "apache_beam": apache_beam.__version__,
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }


def write_result(name: str, result: dict[str, Any], results_dir: str = RESULTS_DIR) -> str:
    """Write <results_dir>/<name>.json with the environment and a timestamp; returns the path."""
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, f"{name}.json")
    payload = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment(),
        **result,
    }
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2)
    return path


def positive(value: float | None) -> float | None:
    """value when it is a finite positive number, else None (not measurable)."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def safe_ratio(ours: float | None, baseline: float | None) -> float | None:
    """ours / baseline, or None when either is not a positive finite number: a ratio of a
    negative or zero figure (timing noise) means nothing."""
    ours, baseline = positive(ours), positive(baseline)
    return positive(ours / baseline) if ours is not None and baseline is not None else None


def fit_line(samples: Mapping[int, float | Sequence[float]]) -> dict[str, Any]:
    """Least-squares line seconds = fixed + per_example * size through every sample (several sizes,
    each with one or more repeats).

    per_example_ms is None (not measurable) when the slope is not positive or, with samples to
    spare, is within two standard errors of zero: timing noise on a loaded machine, not a cost.
    fixed_s is None when the intercept is negative.
    """
    import numpy as np

    sizes, seconds = [], []
    for size, values in samples.items():
        for value in values if isinstance(values, Sequence) else [values]:
            sizes.append(float(size))
            seconds.append(float(value))
    x, y = np.array(sizes), np.array(seconds)
    result: dict[str, Any] = {"fixed_s": None, "per_example_ms": None, "samples": len(x)}
    if len(set(sizes)) < 2:
        result["note"] = f"{NOT_MEASURABLE}: needs two sizes or more"
        return result
    slope, intercept = np.polyfit(x, y, 1)
    if len(x) > 2:
        residuals = y - (slope * x + intercept)
        standard_error = math.sqrt(float(residuals @ residuals) / (len(x) - 2) / float(((x - x.mean()) ** 2).sum()))
        result["per_example_ms_standard_error"] = standard_error * 1000
    else:
        standard_error = 0.0
    if slope > 0 and slope > 2 * standard_error:
        result["per_example_ms"] = float(slope) * 1000
        result["fixed_s"] = positive(float(intercept))
    else:
        result["note"] = (
            f"{NOT_MEASURABLE}: slope {slope * 1000:.4g} ms/example "
            f"(standard error {standard_error * 1000:.2g}), timing noise larger than the cost"
        )
    return result


def format_figure(value: float | None, digits: int = 3) -> str:
    """A figure for a table or a log line; None prints as 'not measurable'."""
    return NOT_MEASURABLE if positive(value) is None else f"{value:.{digits}f}"
