"""Run the pipeline in this process with LocalDagRunner and a sqlite ML Metadata store."""

from __future__ import annotations

import os

from tfx.orchestration import metadata as tfx_metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipeline.failures import record_failure
from pipeline.pipeline import create_pipeline
from pipeline.run_lock import run_lock
from pipeline_config import PipelineConfig


def run_local(config: PipelineConfig) -> None:
    """Run every component in order; raises when a component fails, and PipelineRootBusy (before
    touching ML Metadata) while another run holds the pipeline root."""
    config = config.absolute()
    with run_lock(config):
        os.makedirs(os.path.dirname(config.resolved_metadata_path), exist_ok=True)
        metadata = tfx_metadata.sqlite_metadata_connection_config(config.resolved_metadata_path)
        try:
            LocalDagRunner().run(create_pipeline(config, metadata))
        except Exception as error:
            record_failure(config.resolved_metadata_path, config.pipeline_name, error)  # for the run summary
            raise
