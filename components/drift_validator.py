"""DriftValidator: this run's data against the data of the run that produced the live model.

TFDV's drift comparators do the measuring: a Jensen-Shannon divergence on each configured feature
(`drift_comparator` in a copy of the schema), between this run's train-split statistics and the
train-split statistics of the examples the live model was trained on (resolved from ML Metadata by
`LiveModelStatisticsStrategy`). Every distance is recorded on the output artifact
(`drift_measurements`, JSON) whether or not it exceeds anything, so the run summary shows the
change. With a threshold the execution fails when a feature exceeds it, naming the feature and the
distance; the pipeline makes the Trainer wait for it, so nothing is trained or pushed.
Without a baseline (no live model yet) it records that and passes.
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import io_utils

from sparse_ae.errors import DataValidationError

DRIFT_KEY = "drift"
MEASUREMENTS_PROPERTY = "drift_measurements"
# JSD (natural log) never exceeds ln 2 < 1: a comparator threshold of 1 records without flagging.
_REPORT_ONLY = 1.0
_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: "Jensen-Shannon divergence",
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity distance",
}


def split_statistics(statistics: types.Artifact, split: str):
    """The DatasetFeatureStatisticsList of one split of an ExampleStatistics artifact."""
    return tfdv.load_stats_binary(os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb"))


def measure_drift(
    current, previous, schema: schema_pb2.Schema, features: list[str]
) -> tuple[anomalies_pb2.Anomalies, list[dict[str, Any]]]:
    """TFDV's anomalies and one {feature, measure, value} per compared feature."""
    schema = schema_pb2.Schema.FromString(schema.SerializeToString())
    for name in features:
        tfdv.get_feature(schema, name).drift_comparator.jensen_shannon_divergence.threshold = _REPORT_ONLY
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=previous)
    measured = [
        {"feature": ".".join(info.path.step), "measure": _NAMES.get(m.type, str(m.type)), "value": m.value}
        for info in anomalies.drift_skew_info
        for m in info.drift_measurements
    ]
    return anomalies, measured


def exceeding(measured: list[dict[str, Any]], threshold: float | None) -> list[str]:
    """'feature: measure value > threshold' for each distance above the threshold."""
    if threshold is None:
        return []
    return [
        f"{m['feature']}: {m['measure']} {m['value']:.4f} > drift.threshold {threshold:g}"
        for m in measured
        if m["value"] > threshold
    ]


class DriftValidatorSpec(ComponentSpec):
    PARAMETERS = {
        "threshold": ExecutionParameter(type=float, optional=True),
        "features": ExecutionParameter(type=str),  # JSON list
        "split": ExecutionParameter(type=str),
    }
    INPUTS = {
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
        "baseline_statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
    }
    OUTPUTS = {DRIFT_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies)}


class Executor(base_executor.BaseExecutor):
    """Measures, records, and fails above the threshold (see the module docstring)."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        output = artifact_utils.get_single_instance(output_dict[DRIFT_KEY])
        split = exec_properties["split"]
        output.split_names = artifact_utils.encode_split_names([split])
        baseline = input_dict.get("baseline_statistics") or []
        if not baseline:
            output.set_string_custom_property(MEASUREMENTS_PROPERTY, json.dumps({"baseline": None, "measured": []}))
            return
        current = artifact_utils.get_single_instance(input_dict["statistics"])
        schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"]))
        )
        anomalies, measured = measure_drift(
            split_statistics(current, split),
            split_statistics(baseline[0], split),
            schema,
            json.loads(exec_properties["features"]),
        )
        io_utils.write_bytes_file(
            os.path.join(output.uri, f"Split-{split}", "SchemaDiff.pb"), anomalies.SerializeToString()
        )
        threshold = exec_properties.get("threshold")
        output.set_string_custom_property(
            MEASUREMENTS_PROPERTY,
            json.dumps(
                {
                    "baseline": baseline[0].uri,
                    "baseline_id": baseline[0].id,
                    "threshold": threshold,
                    "split": split,
                    "measured": measured,
                }
            ),
        )
        too_far = exceeding(measured, threshold)
        if too_far:
            raise DataValidationError(
                f"data drift against the data of the live model ({split} split): {'; '.join(too_far)}; nothing "
                f"is trained or pushed on this data (raise drift.threshold, or unset it to only report)"
            )


class DriftValidator(base_component.BaseComponent):
    """Drift of `statistics` from `baseline_statistics` (optional) on the given features."""

    SPEC_CLASS = DriftValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        statistics: types.BaseChannel,
        schema: types.BaseChannel,
        baseline_statistics: types.BaseChannel,
        features: list[str],
        threshold: float | None = None,
        split: str = "train",
    ):
        super().__init__(
            spec=DriftValidatorSpec(
                statistics=statistics,
                schema=schema,
                baseline_statistics=baseline_statistics,
                features=json.dumps(list(features)),
                threshold=threshold,
                split=split,
                drift=types.Channel(type=standard_artifacts.ExampleAnomalies),
            )
        )
