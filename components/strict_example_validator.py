"""StrictExampleValidator: TFX's ExampleValidator, failing its execution when it finds anomalies.

TFX's ExampleValidator only records anomalies; nothing downstream reads them, so a model trained
on anomalous data would still be evaluated, blessed and pushed. This one fails instead, with the
anomalies in one line; the pipeline makes the Trainer wait for it, so on every orchestrator
(task dependencies: LocalDagRunner, Airflow, Kubeflow) nothing is trained, blessed or pushed.
The check runs on the statistics, so it also covers what per-record checks cannot see, such as
a split whose images are all blank.
"""

from __future__ import annotations

import os
from typing import Any

from google.protobuf import text_format
from tensorflow_data_validation.anomalies.proto import custom_validation_config_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.components.example_validator import executor as tfx_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.types.standard_component_specs import ANOMALIES_KEY, CUSTOM_VALIDATION_CONFIG_KEY
from tfx.utils import io_utils, proto_utils

from sparse_ae.errors import DataValidationError


def anomaly_lines(anomalies_uri: str) -> list[str]:
    """'split: feature: description' for each anomaly written under an ExampleAnomalies uri.

    Through TFX's file layer: the uri is a gs:// path on Kubeflow and Vertex AI.
    """
    found = []
    for found_path in sorted(fileio.glob(os.path.join(anomalies_uri, "Split-*", "SchemaDiff.pb"))):
        path = found_path.decode() if isinstance(found_path, bytes) else found_path
        split = os.path.basename(os.path.dirname(path))[len("Split-") :]
        anomalies = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
        for feature, info in sorted(anomalies.anomaly_info.items()):
            found.append(f"{split}: {feature}: {info.short_description or info.description}")
        if anomalies.HasField("dataset_anomaly_info"):
            found.append(f"{split}: dataset: {anomalies.dataset_anomaly_info.description}")
    return found


def not_constant(feature: str, description: str) -> custom_validation_config_pb2.CustomValidationConfig:
    """A statistics-level check (TFDV SQL validation): the feature's values are not all one value."""
    return text_format.Parse(
        f"""
        feature_validations {{
          feature_path {{ step: "{feature}" }}
          validations {{
            sql_expression: "feature.num_stats.max > feature.num_stats.min"
            severity: ERROR
            description: "{description}"
          }}
        }}""",
        custom_validation_config_pb2.CustomValidationConfig(),
    )


class Executor(tfx_executor.Executor):
    """Validates like TFX's executor, then raises DataValidationError if any split has anomalies."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ):
        config = exec_properties.get(CUSTOM_VALIDATION_CONFIG_KEY)
        if isinstance(config, str):  # JSON in this spec (see StrictExampleValidatorSpec)
            exec_properties = {
                **exec_properties,
                CUSTOM_VALIDATION_CONFIG_KEY: proto_utils.json_to_proto(
                    config, custom_validation_config_pb2.CustomValidationConfig()
                )
                if config
                else None,
            }
        result = super().Do(input_dict, output_dict, exec_properties)
        found = anomaly_lines(artifact_utils.get_single_uri(output_dict[ANOMALIES_KEY]))
        if found:
            raise DataValidationError(
                f"{len(found)} data anomal{'y' if len(found) == 1 else 'ies'}: "
                f"{'; '.join(found)}; nothing is trained or pushed on this data"
            )
        return result


class StrictExampleValidatorSpec(standard_component_specs.ExampleValidatorSpec):
    """ExampleValidator's spec, with the custom validations as a JSON parameter: Kubeflow V2 cannot
    compile the proto placeholder that TFX's spec makes of them (use_proto)."""

    PARAMETERS = {
        **standard_component_specs.ExampleValidatorSpec.PARAMETERS,
        CUSTOM_VALIDATION_CONFIG_KEY: ExecutionParameter(
            type=custom_validation_config_pb2.CustomValidationConfig, optional=True
        ),
    }


class StrictExampleValidator(base_component.BaseComponent):
    """ExampleValidator (same inputs and output) whose execution fails on anomalies."""

    SPEC_CLASS = StrictExampleValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        statistics: types.BaseChannel,
        schema: types.BaseChannel,
        custom_validation_config: custom_validation_config_pb2.CustomValidationConfig | None = None,
    ):
        super().__init__(
            spec=StrictExampleValidatorSpec(
                statistics=statistics,
                schema=schema,
                exclude_splits="[]",
                custom_validation_config=custom_validation_config,
                anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
            )
        )
