"""Compile the pipeline into a Kubeflow V2 PipelineSpec (KubeflowV2DagRunner) for Vertex AI Pipelines.

The spec is schema 2.0.0 (TFX 1.16's default): constants as `runtimeValue.constantValue` and the baseline
lookup as two `resolver` tasks. Vertex AI Pipelines runs it as compiled; the open-source Kubeflow
Pipelines v2 backend does not (docs/running-at-scale.md, "Who can run the spec").
"""

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
from sparse_ae.errors import ConfigError

TARGET = (
    "Runs as compiled on Vertex AI Pipelines; self-hosted Kubeflow Pipelines v2 refuses its resolver "
    "tasks and deprecated constants (docs/running-at-scale.md, 'Who can run the spec')."
)


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


def kubeflow_changes(config: PipelineConfig) -> list[str]:
    """What the compiled spec does differently from `sparse-ae pipeline run` with the same config."""
    ready = kubeflow_ready(config)
    changes = []
    if ready.pipeline_name != config.pipeline_name:
        changes.append(f"pipeline_name {config.pipeline_name} -> {ready.pipeline_name} (KFP names allow no '_')")
    if config.gate.baseline != ready.gate.baseline:
        changes.append(
            f"gate.baseline {config.gate.baseline} -> {ready.gate.baseline}: the baseline is the latest blessed "
            "model, not the one live after promotions and rollbacks (Kubeflow V2 compiles only TFX's "
            "built-in resolver strategies)"
        )
    if config.drift.enabled:
        changes.append("drift check dropped (drift.enabled -> false: its resolver is a custom strategy)")
    changes.append("ML Metadata: the backend's store (metadata_path and the local run lock are not used)")
    if not config.beam_pipeline_args:
        changes.append(
            "Beam: no beam_pipeline_args given, so TFDSExampleGen, StatisticsGen and Evaluator run Beam "
            "inside their own container (set beam_pipeline_args for Dataflow)"
        )
    return changes


def is_remote(path: str | None) -> bool:
    """A URI with a scheme other than file:// (gs://, s3://, hdfs://): a path a cluster can see."""
    return path is not None and "://" in path and not path.startswith("file://")


def names_registry(image: str) -> bool:
    """Docker's rule: the first part of the name is a registry when it has a '.' or ':' or is localhost."""
    first, slash, _ = image.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def local_only_settings(config: PipelineConfig) -> list[str]:
    """The settings that only this machine can serve: each a phrase naming the setting."""
    found = [
        f"{key}={getattr(config, key)} is a local path"
        for key in ("pipeline_root", "serving_dir")
        if not is_remote(getattr(config, key))
    ]
    if not names_registry(config.container_image):
        found.append(f"container_image={config.container_image} names no registry the cluster can pull from")
    dataset = config.dataset
    if dataset.data_dir and not is_remote(dataset.data_dir):
        found.append(f"dataset.data_dir={dataset.data_dir} is a local path")
    elif not dataset.data_dir:
        found.append(
            "dataset.data_dir is unset: every run would "
            + ("download the dataset inside its container" if dataset.download else "find no prepared dataset")
        )
    return found


def compile_kubeflow(config: PipelineConfig, output_file: str, allow_local: bool = False) -> str:
    """Write the PipelineSpec JSON that Vertex AI Pipelines runs; returns its path.

    ConfigError when a setting only this machine can serve (a local pipeline_root, serving_dir or
    dataset.data_dir, an image in no registry, a dataset downloaded by every run) unless allow_local.
    No metadata connection: the backend provides ML Metadata.
    """
    problems = [] if allow_local else local_only_settings(config)
    if problems:
        raise ConfigError(
            "the spec would not run on a cluster: "
            + "; ".join(problems)
            + " (use gs:// paths, a registry image and a prepared dataset, or --allow-local to compile anyway)"
        )
    output_file = os.path.abspath(output_file)
    os.makedirs(os.path.dirname(output_file), exist_ok=True)
    runner = KubeflowV2DagRunner(
        config=KubeflowV2DagRunnerConfig(default_image=config.container_image),
        output_dir=os.path.dirname(output_file),
        output_filename=os.path.basename(output_file),
    )
    runner.run(create_pipeline(kubeflow_ready(config)), write_out=True)
    return output_file
