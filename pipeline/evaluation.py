"""The Evaluator's TFMA config: mean PSNR overall and per class, gated by value and change thresholds.

The exported model computes each example's PSNR in its serving signature (one definition, in
sparse_ae.metrics); TFMA only averages that prediction. Feeding TFMA the 784-value image as a
label instead costs ~40x more per example (see README).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import tensorflow_model_analysis as tfma

from pipeline_config import GateConfig

PSNR_METRIC = "psnr"  # the gate's metric name in the evaluation output
PSNR_PREDICTION_KEY = "psnr"  # the serving signature's per-example PSNR output
LABEL_FEATURE = "label"


def psnr_metric(threshold: tfma.MetricThreshold | None = None,
                per_slice: List[tfma.PerSliceMetricThreshold] = ()) -> tfma.MetricConfig:
    """TFMA's MeanPrediction of the per-example PSNR, named `psnr`."""
    return tfma.MetricConfig(class_name="MeanPrediction", config=f'"name": "{PSNR_METRIC}"', threshold=threshold,
                             per_slice_thresholds=list(per_slice))


def gate_threshold(gate: GateConfig) -> tfma.MetricThreshold:
    """Bless when PSNR >= psnr_threshold and candidate - baseline >= -change_tolerance."""
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": gate.psnr_threshold}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -gate.change_tolerance}))


def eval_config(gate: GateConfig) -> tfma.EvalConfig:
    """Overall and per-label slices; the PSNR gate overall, and an optional floor on every class.

    The gate is a per-slice threshold on the overall slice: a MetricConfig.threshold would apply
    to every slice, the per-label ones included, making the overall threshold a class floor too.
    """
    per_slice = [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=gate_threshold(gate))]
    if gate.class_psnr_floor is not None:
        per_slice.append(tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec(feature_keys=[LABEL_FEATURE])],
            threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                lower_bound={"value": gate.class_psnr_floor}))))
    metrics_spec = tfma.MetricsSpec(metrics=[psnr_metric(per_slice=per_slice),
                                             tfma.MetricConfig(class_name="ExampleCount")])
    return tfma.EvalConfig(
        # tf_generic: the SavedModel is a plain tf.Module, so TFMA does not try Keras loading
        # or compiled Keras metrics; serving_default parses the serialized examples itself.
        # The class label is given as label only because TFMA 0.47's MeanPrediction skips the
        # predictions of unlabeled examples (calibration.py checks len(label)); it is not used.
        model_specs=[tfma.ModelSpec(signature_name="serving_default", prediction_key=PSNR_PREDICTION_KEY,
                                    label_key=LABEL_FEATURE, model_type=tfma.TF_GENERIC)],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[LABEL_FEATURE])],
        metrics_specs=[metrics_spec])


def gate_bounds(config: tfma.EvalConfig) -> Dict[str, Optional[float]]:
    """The gate an EvalConfig encodes: psnr_threshold, change_tolerance and class_psnr_floor (None when absent).

    Reads both forms: per-slice thresholds (eval_config above) and a MetricConfig.threshold on
    every slice (what earlier runs recorded).
    """
    bounds: Dict[str, Optional[float]] = {"psnr_threshold": None, "change_tolerance": None, "class_psnr_floor": None}
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name != "MeanPrediction":
                continue
            scoped = [(True, metric.threshold)] if metric.HasField("threshold") else []
            for per_slice in metric.per_slice_thresholds:
                overall = any(slicing == tfma.SlicingSpec() for slicing in per_slice.slicing_specs)
                scoped.append((overall, per_slice.threshold))
            for overall, threshold in scoped:
                if threshold.value_threshold.HasField("lower_bound"):
                    key = "psnr_threshold" if overall else "class_psnr_floor"
                    bounds[key] = threshold.value_threshold.lower_bound.value
                if threshold.change_threshold.HasField("absolute"):
                    bounds["change_tolerance"] = -threshold.change_threshold.absolute.value
    return bounds


def recorded_gate(evaluator_execution) -> Dict[str, Optional[float]]:
    """gate_bounds of the eval_config an Evaluator execution recorded in ML Metadata (all None
    when it has none or it does not parse)."""
    from google.protobuf import json_format

    prop = evaluator_execution.custom_properties.get("eval_config") if evaluator_execution is not None else None
    try:
        config = json_format.Parse(prop.string_value, tfma.EvalConfig(), ignore_unknown_fields=True) if prop else None
    except json_format.ParseError:
        config = None
    return gate_bounds(config if config is not None else tfma.EvalConfig())
