"""The Evaluator's TFMA config: mean PSNR overall and per class, gated by value and change thresholds;
the code's sparsity per image and the gains over the linear baselines, gated by default; the mean
latent activation, optionally gated.

The exported model computes each example's PSNR in its serving signature (one definition, in
sparse_ae.metrics); TFMA only averages that prediction. Feeding TFMA the 784-value image as a
label instead costs ~40x more per example (docs/pipeline.md, "The gate").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import tensorflow_model_analysis as tfma

from pipeline_config import GateConfig
from sparse_ae.serving_layout import SERVING_DEFAULT

PSNR_METRIC = "psnr"  # the gate's metric name in the evaluation output
MEAN_ACTIVATION_METRIC = "mean_activation"  # the eval split's mean latent activation
# mean_activation / the model's own sparsity_target: the sparsity check's figure, which holds for a
# sparsity_target chosen by the Tuner as well as for the configured one.
TARGET_RATIO_METRIC = "activation_to_target"
LINEAR_PSNR_METRIC = "linear_baseline_psnr"  # PCA of the same code size, scored per image by the model's signature
GAIN_METRIC = "psnr_gain_over_linear"  # psnr - linear_baseline_psnr
# The code's sparsity per image (sparse_ae/sparsity.py), averaged over the eval split.
ACTIVE_UNITS_METRIC = "active_units"
HOYER_METRIC = "hoyer"
PSNR_ACTIVE_ONLY_METRIC = "psnr_active_only"
ZEROING_COST_METRIC = "zeroing_cost"
LINEAR_PSNR_AT_ACTIVE_METRIC = "linear_baseline_psnr_at_active"  # PCA with the code's active size
GAIN_AT_ACTIVE_METRIC = "psnr_gain_over_linear_at_active"
# gate key -> (metric it bounds, "lower" or "upper" bound) for the candidate-only conditions
# (sparsity_tolerance bounds TARGET_RATIO_METRIC on both sides, around 1).
BOUNDED_METRICS = {
    "max_active_units": (ACTIVE_UNITS_METRIC, "upper"),
    "min_hoyer": (HOYER_METRIC, "lower"),
    "max_zeroing_cost": (ZEROING_COST_METRIC, "upper"),
    "min_gain_over_linear": (GAIN_AT_ACTIVE_METRIC, "lower"),
    "min_gain_over_full_linear": (GAIN_METRIC, "lower"),
}
# Reported beside the bounded ones, never gated.
REPORTED_METRICS = (MEAN_ACTIVATION_METRIC, LINEAR_PSNR_METRIC, PSNR_ACTIVE_ONLY_METRIC, LINEAR_PSNR_AT_ACTIVE_METRIC)
LABEL_FEATURE = "label"
ENGINES = ("batched", "tfma")  # evaluation.engine (pipeline_config.EvaluationConfig)
EVALUATOR_MODULE = "pipeline.evaluator_module"  # the Evaluator's module_path with evaluation.engine=batched
# The metric classes of each engine: TFMA's, or the same means and count on whole batches
# (pipeline/evaluator_module.py); the metric keys, and so the evaluation output, are the same.
MEAN_CLASS = {"tfma": ("MeanPrediction", ""), "batched": ("BatchMean", EVALUATOR_MODULE)}
COUNT_CLASS = {"tfma": ("ExampleCount", ""), "batched": ("BatchExampleCount", EVALUATOR_MODULE)}
# Each metric is TFMA's MeanPrediction of the serving signature's output of the same name
# (sparse_ae/export.py): the exported model computes every per-example figure itself.


def mean_of_output(
    name: str,
    per_slice: Sequence[tfma.PerSliceMetricThreshold] = (),
    candidate_only: bool = False,
    engine: str = "tfma",
) -> tfma.MetricsSpec:
    """MeanPrediction (or BatchMean: engine) of the signature output `name`, named `name`.

    candidate_only: not computed for the baseline model, which needs only PSNR for the change
    threshold (and may predate the output).
    """
    class_name, module = MEAN_CLASS[engine]
    return tfma.MetricsSpec(
        output_names=[name],
        model_names=["candidate"] if candidate_only else [],
        metrics=[
            tfma.MetricConfig(
                class_name=class_name,
                module=module,
                config=f'"name": "{name}"',
                per_slice_thresholds=list(per_slice),
            )
        ],
    )


def overall(threshold: tfma.MetricThreshold) -> list[tfma.PerSliceMetricThreshold]:
    """A threshold on the overall slice only (a MetricConfig.threshold would apply to every slice,
    the per-label ones included, making an overall bound a class floor too)."""
    return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]


def gate_threshold(gate: GateConfig) -> tfma.MetricThreshold:
    """Bless when PSNR >= psnr_threshold and candidate - baseline >= -change_tolerance."""
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": gate.psnr_threshold}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -gate.change_tolerance}
        ),
    )


def bounded(bound: float | None, side: str) -> list[tfma.PerSliceMetricThreshold]:
    """An overall value threshold with bound as its lower or upper side; none without a bound."""
    if bound is None:
        return []
    key = "lower_bound" if side == "lower" else "upper_bound"
    return overall(tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(**{key: {"value": bound}})))


def eval_config(gate: GateConfig, engine: str = "tfma") -> tfma.EvalConfig:
    """Overall and per-label slices; the PSNR gate overall, and optionally: a floor on every class,
    the code's sparsity per image (active units, Hoyer, zeroing cost: BOUNDED_METRICS), the mean
    latent activation within a tolerance of sparsity_target, gains over PCA at the code's active
    size and at its full size.

    engine: "tfma" (TFMA's metric classes) or "batched" (the same metrics on whole batches, for the
    Evaluator with module_path=EVALUATOR_MODULE).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    psnr_thresholds = overall(gate_threshold(gate))
    if gate.class_psnr_floor is not None:
        psnr_thresholds.append(
            tfma.PerSliceMetricThreshold(
                slicing_specs=[tfma.SlicingSpec(feature_keys=[LABEL_FEATURE])],
                threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(lower_bound={"value": gate.class_psnr_floor})
                ),
            )
        )
    tolerance = gate.sparsity_tolerance
    sparsity = (
        []
        if tolerance is None
        else overall(
            tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(
                    lower_bound={"value": 1.0 - tolerance}, upper_bound={"value": 1.0 + tolerance}
                )
            )
        )
    )
    metrics_specs = [
        mean_of_output(PSNR_METRIC, psnr_thresholds, engine=engine),
        mean_of_output(TARGET_RATIO_METRIC, sparsity, candidate_only=True, engine=engine),
        *(
            mean_of_output(metric, bounded(getattr(gate, key), side), candidate_only=True, engine=engine)
            for key, (metric, side) in BOUNDED_METRICS.items()
        ),
        *(mean_of_output(metric, candidate_only=True, engine=engine) for metric in REPORTED_METRICS),
        tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name=COUNT_CLASS[engine][0], module=COUNT_CLASS[engine][1])]),
    ]
    return tfma.EvalConfig(
        # tf_generic: the SavedModel is a plain tf.Module, so TFMA does not try Keras loading
        # or compiled Keras metrics; serving_default parses the serialized examples itself.
        # The class label is given as label only because TFMA 0.47's MeanPrediction skips the
        # predictions of unlabeled examples (calibration.py checks len(label)); it is not used.
        model_specs=[
            tfma.ModelSpec(signature_name=SERVING_DEFAULT, label_key=LABEL_FEATURE, model_type=tfma.TF_GENERIC)
        ],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[LABEL_FEATURE])],
        metrics_specs=metrics_specs,
    )


GATE_KEYS = ("psnr_threshold", "change_tolerance", "class_psnr_floor", "sparsity_tolerance", *BOUNDED_METRICS)


def _metric_name(metric: tfma.MetricConfig) -> str:
    """The name a MetricConfig gives its metric (MeanPrediction's default name when none)."""
    found = re.search(r'"name"\s*:\s*"([^"]+)"', metric.config or "")
    return found.group(1) if found else PSNR_METRIC


def gate_bounds(config: tfma.EvalConfig) -> dict[str, float | None]:
    """The gate an EvalConfig encodes (GATE_KEYS; None when absent).

    Reads both forms of the PSNR gate: per-slice thresholds (eval_config above) and a
    MetricConfig.threshold on every slice (what earlier runs recorded).
    """
    bounds: dict[str, float | None] = dict.fromkeys(GATE_KEYS)
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name not in {class_name for class_name, _ in MEAN_CLASS.values()}:
                continue
            name = _metric_name(metric)
            scoped = [(True, metric.threshold)] if metric.HasField("threshold") else []
            for per_slice in metric.per_slice_thresholds:
                is_overall = any(slicing == tfma.SlicingSpec() for slicing in per_slice.slicing_specs)
                scoped.append((is_overall, per_slice.threshold))
            for is_overall, threshold in scoped:
                value = threshold.value_threshold
                for key, (metric, side) in BOUNDED_METRICS.items():
                    if name == metric and value.HasField(f"{side}_bound"):
                        bounds[key] = getattr(value, f"{side}_bound").value
                if name == TARGET_RATIO_METRIC and value.HasField("upper_bound"):
                    bounds["sparsity_tolerance"] = round(value.upper_bound.value - 1.0, 12)
                elif name == PSNR_METRIC:
                    if value.HasField("lower_bound"):
                        bounds["psnr_threshold" if is_overall else "class_psnr_floor"] = value.lower_bound.value
                    if threshold.change_threshold.HasField("absolute"):
                        bounds["change_tolerance"] = -threshold.change_threshold.absolute.value
    return bounds


def recorded_gate(evaluator_execution) -> dict[str, float | None]:
    """gate_bounds of the eval_config an Evaluator execution recorded in ML Metadata (all None
    when it has none or it does not parse)."""
    from google.protobuf import json_format

    prop = evaluator_execution.custom_properties.get("eval_config") if evaluator_execution is not None else None
    try:
        config = json_format.Parse(prop.string_value, tfma.EvalConfig(), ignore_unknown_fields=True) if prop else None
    except json_format.ParseError:
        config = None
    return gate_bounds(config if config is not None else tfma.EvalConfig())
