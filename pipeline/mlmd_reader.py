"""Reading ML Metadata: the store, a pipeline's runs, their executions, their input and output artifacts.

The one place the run summary (pipeline/run_summary.py), the run report (pipeline/report/),
`sparse-ae models` (pipeline/promotion.py) and the failure record (pipeline/failures.py) open the
sqlite store and look runs up. The lineage queries (an execution's artifacts, an artifact's
executions) are components/lineage.py's, shared with the resolver strategies and the serving state,
since components/ never imports pipeline/; they are re-exported here.
"""

from __future__ import annotations

import os

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.lineage import ExecutionArtifacts as ExecutionArtifacts  # re-exported, as the three below
from components.lineage import artifact_executions as artifact_executions
from components.lineage import execution_artifacts as execution_artifacts
from components.lineage import execution_outputs as execution_outputs
from pipeline_config import METADATA_FILE
from sparse_ae.errors import ConfigError

SERVING_MODEL_DIR = "Format-Serving"  # the Trainer's SavedModel inside its Model artifact


def local_store_path(pipeline_root: str, metadata_path: str | None = None) -> str:
    """The sqlite store's absolute path (default <pipeline_root>/metadata.sqlite); ConfigError when
    that is remote: sqlite needs a local disk, so a remote root (gs://...) needs metadata_path."""
    path = metadata_path or os.path.join(pipeline_root, METADATA_FILE)
    if "://" in path:
        raise ConfigError(
            f"the ML Metadata store {path!r} is remote, and sqlite needs a local file: with a remote "
            "pipeline_root, pass --set metadata_path=FILE (a local path)"
        )
    return os.path.abspath(path)


def metadata_file(pipeline_root: str, metadata_path: str | None = None) -> str:
    """The run records' sqlite file (default <pipeline_root>/metadata.sqlite); ConfigError if root or file is absent.

    Cheap (no TensorFlow import): the command line checks this first.
    """
    path = local_store_path(pipeline_root, metadata_path)
    if "://" not in pipeline_root and not os.path.isdir(pipeline_root):  # local: the store's default place
        raise ConfigError(f"no pipeline root {pipeline_root!r}")
    if not os.path.isfile(path):  # local by definition: sqlite
        raise ConfigError(f"no ML Metadata store at {path!r}: no pipeline has run with this root")
    return path


def open_store(metadata_path: str, writable: bool = False) -> metadata_store.MetadataStore:
    """A connection to an existing sqlite store (never creates one); read-only unless writable."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    mode = metadata_store_pb2.SqliteMetadataSourceConfig
    config.sqlite.connection_mode = mode.READWRITE if writable else mode.READONLY
    return metadata_store.MetadataStore(config)


def latest_run_id(store: metadata_store.MetadataStore, pipeline_name: str) -> str:
    """The newest pipeline_run context of the pipeline."""
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        raise LookupError(f"no pipeline {pipeline_name!r} in ML Metadata")
    runs = [c for c in store.get_children_contexts_by_context(pipeline.id) if c.type == "pipeline_run"] or [
        c for c in store.get_contexts_by_type("pipeline_run")
    ]
    if not runs:
        raise LookupError(f"pipeline {pipeline_name!r} has no recorded run")
    return max(runs, key=lambda c: (c.create_time_since_epoch, c.id)).name


def run_context(store: metadata_store.MetadataStore, run_id: str) -> metadata_store_pb2.Context:
    """The pipeline_run context named run_id; LookupError when there is none."""
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    if run is None:
        raise LookupError(f"no pipeline run {run_id!r} in ML Metadata")
    return run


def node_executions(
    store: metadata_store.MetadataStore, pipeline_name: str, run_id: str
) -> dict[str, metadata_store_pb2.Execution]:
    """node id -> its execution in this run."""
    in_run = {e.id: e for e in store.get_executions_by_context(run_context(store, run_id).id)}
    result = {}
    for node in store.get_contexts_by_type("node"):
        prefix = f"{pipeline_name}."
        if not node.name.startswith(prefix):
            continue
        for execution in store.get_executions_by_context(node.id):
            if execution.id in in_run:
                result[node.name[len(prefix) :]] = execution
    return result


def resolve_run(
    pipeline_root: str,
    run_id: str | None = None,
    pipeline_name: str | None = None,
    metadata_path: str | None = None,
) -> tuple[str, str, str]:
    """(metadata_path, pipeline_name, run_id) of a recorded run; ConfigError naming what is wrong.

    Without pipeline_name, the store's only pipeline (or `sparse_ae` among several); without
    run_id, the pipeline's latest run.
    """
    metadata_path = metadata_file(pipeline_root, metadata_path)
    store = open_store(metadata_path)
    names = sorted(c.name for c in store.get_contexts_by_type("pipeline"))
    if pipeline_name is None:
        pipeline_name = names[0] if len(names) == 1 else "sparse_ae"
    if pipeline_name not in names:
        raise ConfigError(f"no pipeline {pipeline_name!r} in {metadata_path} (recorded: {', '.join(names) or 'none'})")
    if run_id is None:
        try:
            run_id = latest_run_id(store, pipeline_name)
        except LookupError as error:
            raise ConfigError(str(error)) from None
    if store.get_context_by_type_and_name("pipeline_run", run_id) is None:
        runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))
        recent = ", ".join(c.name for c in runs[-5:]) or "none"
        raise ConfigError(
            f"no run {run_id!r} of pipeline {pipeline_name!r} in {metadata_path} (latest runs, newest last: {recent})"
        )
    return metadata_path, pipeline_name, run_id


def pipeline_models(
    store: metadata_store.MetadataStore, context: metadata_store_pb2.Context
) -> dict[int, metadata_store_pb2.Artifact]:
    """Model artifact id -> Model, of every run of the pipeline (context)."""
    return {a.id: a for a in store.get_artifacts_by_context(context.id) if a.type == "Model"}
