"""Run the pipeline in this process with LocalDagRunner and a sqlite ML Metadata store."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from absl import logging
from tfx.orchestration import metadata as tfx_metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipeline.beam_args import BEAM_MODE_PROPERTY, beam_mode, local_beam_pipeline_args, mode_environment
from pipeline.failures import record_failure
from pipeline.mlmd_reader import local_store_path, open_store
from pipeline.pipeline import create_pipeline
from pipeline.run_lock import run_lock
from pipeline_config import PipelineConfig


def run_local(config: PipelineConfig) -> None:
    """Run every component in order; raises when a component fails, and PipelineRootBusy (before
    touching ML Metadata) while another run holds the pipeline root.

    The DirectRunner mode is chosen now, for this machine and the dataset as it is (unless
    beam_pipeline_args sets it), and reaches the Beam components outside TFX's cache key
    (pipeline/beam_args.py); the choice and its reason are recorded on the run."""
    config = config.absolute()
    local_store_path(config.pipeline_root, config.metadata_path)  # a remote store: one line, before anything runs
    with run_lock(config):
        os.makedirs(os.path.dirname(config.resolved_metadata_path), exist_ok=True)
        metadata = tfx_metadata.sqlite_metadata_connection_config(config.resolved_metadata_path)
        mode = beam_mode(config)
        pipeline = create_pipeline(config, metadata, local_beam_pipeline_args(config))
        earlier_runs = _run_ids(config.resolved_metadata_path)
        try:
            with _environment(mode_environment(mode)):
                LocalDagRunner().run(pipeline)
        except Exception as error:
            record_failure(config.resolved_metadata_path, config.pipeline_name, error)  # for the run summary
            raise
        finally:
            _record_beam_mode(config.resolved_metadata_path, earlier_runs, mode.describe())


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """os.environ with variables set, as it was afterwards."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_ids(metadata_path: str) -> set[int]:
    """The ids of the pipeline_run contexts in the store (none before the first run)."""
    if not os.path.exists(metadata_path):
        return set()
    return {run.id for run in open_store(metadata_path).get_contexts_by_type("pipeline_run")}


def _record_beam_mode(metadata_path: str, earlier_runs: set[int], description: str) -> None:
    """Put the Beam mode on the pipeline_run context this run created, if it got that far (best
    effort, as record_failure)."""
    try:
        store = open_store(metadata_path, writable=True)
        runs = [run for run in store.get_contexts_by_type("pipeline_run") if run.id not in earlier_runs]
        for run in runs:  # one: runs of a root are one at a time (run_lock)
            run.custom_properties[BEAM_MODE_PROPERTY].string_value = description
        store.put_contexts(runs)
    except Exception as failure:  # noqa: BLE001 - a record for the summary; the run's outcome matters more
        logging.warning("Could not record the Beam mode in ML Metadata (%s): %s", metadata_path, failure)
