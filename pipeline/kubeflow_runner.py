"""Compile the pipeline for Kubeflow Pipelines v2 and Vertex AI Pipelines (KubeflowV2DagRunner)."""

from __future__ import annotations

import os
import re

# Not exported by tfx.v1 in 1.16 (its import there is swallowed); this path works.
from tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner import (
    KubeflowV2DagRunner,
    KubeflowV2DagRunnerConfig,
)

from pipeline.pipeline import create_pipeline
from pipeline_config import PipelineConfig


def kubeflow_name(name: str) -> str:
    """KFP's pipeline-name pattern is [a-z0-9][a-z0-9-]{0,127}: sparse_ae -> sparse-ae."""
    return re.sub(r"[^a-z0-9-]", "-", name.lower()).lstrip("-")[:128] or "sparse-ae"


def kubeflow_ready(config: PipelineConfig) -> PipelineConfig:
    """The config as Kubeflow V2 can compile it: a KFP-legal name, and the latest blessed model as
    baseline (Kubeflow V2 compiles Resolvers only for TFX's built-in strategies, not `live`), and no
    drift check (its baseline resolver is a custom strategy as well)."""
    gate = config.gate.model_copy(update={"baseline": "latest_blessed"})
    drift = config.drift.model_copy(update={"enabled": False})  # its resolver strategy is a custom one too
    return config.model_copy(
        update={"gate": gate, "drift": drift, "pipeline_name": kubeflow_name(config.pipeline_name)}
    )


def compile_kubeflow(config: PipelineConfig, output_file: str) -> str:
    """Write the PipelineSpec JSON that KFP v2 and Vertex AI accept; returns its path.

    No metadata connection: the Kubeflow/Vertex backend provides ML Metadata. Paths in the config
    (pipeline_root, serving_dir, dataset.data_dir) must be ones the cluster sees, e.g. gs://.
    """
    output_file = os.path.abspath(output_file)
    os.makedirs(os.path.dirname(output_file), exist_ok=True)
    runner = KubeflowV2DagRunner(
        config=KubeflowV2DagRunnerConfig(default_image=config.container_image),
        output_dir=os.path.dirname(output_file),
        output_filename=os.path.basename(output_file),
    )
    runner.run(create_pipeline(kubeflow_ready(config)), write_out=True)
    return output_file
