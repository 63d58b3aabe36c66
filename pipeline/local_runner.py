"""Run the pipeline in this process with LocalDagRunner and a sqlite ML Metadata store."""
from __future__ import annotations

import os

from tfx import v1 as tfx

from pipeline.pipeline import create_pipeline
from pipeline_config import PipelineConfig


def run_local(config: PipelineConfig) -> None:
    """Run every component in order; raises when a component fails."""
    config = config.absolute()
    os.makedirs(os.path.dirname(config.resolved_metadata_path), exist_ok=True)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.resolved_metadata_path)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata))
