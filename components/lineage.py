"""Lineage in ML Metadata, walked once for everyone: an execution's input and output artifacts by
key, and the executions that produced or consumed an artifact.

Used by the resolver strategies (components/live_model_strategy.py), the serving state
(components/serving_state.py) and, through pipeline/mlmd_reader.py, the run summary, the report
and `models`. Each function asks the store one query per hop, whatever the number of ids.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2


@dataclasses.dataclass
class ExecutionArtifacts:
    """An execution's artifacts by key (the first step of each event's path), one per key."""

    inputs: dict[str, metadata_store_pb2.Artifact] = dataclasses.field(default_factory=dict)
    outputs: dict[str, metadata_store_pb2.Artifact] = dataclasses.field(default_factory=dict)
    # A Resolver's resolved artifacts: MLMD keeps one event per artifact and execution, so an
    # input that equals another input of the consumer is found here only.
    internal_outputs: dict[str, metadata_store_pb2.Artifact] = dataclasses.field(default_factory=dict)


_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


def execution_artifacts(store: mlmd.MetadataStore, execution_ids: Iterable[int]) -> dict[int, ExecutionArtifacts]:
    """Execution id -> its input, output and internal output artifacts by key, in one query each."""
    found = {execution_id: ExecutionArtifacts() for execution_id in execution_ids}
    events = [e for e in store.get_events_by_execution_ids(list(found)) if e.path.steps]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    for event in events:
        record = found[event.execution_id]
        if event.type == metadata_store_pb2.Event.INPUT:
            kind = record.inputs
        elif event.type in _OUTPUT_EVENTS:
            kind = record.outputs
        elif event.type == metadata_store_pb2.Event.INTERNAL_OUTPUT:
            kind = record.internal_outputs
        else:
            continue
        if event.artifact_id in artifacts:
            kind[event.path.steps[0].key] = artifacts[event.artifact_id]
    return found


def execution_outputs(store: mlmd.MetadataStore, execution_id: int) -> dict[str, metadata_store_pb2.Artifact]:
    """Output key -> artifact of an execution."""
    return execution_artifacts(store, [execution_id])[execution_id].outputs


def artifact_executions(store: mlmd.MetadataStore, artifact_id: int, input_key: str) -> tuple[list[int], list[int]]:
    """(the executions that output the artifact, those that took it as input under input_key), ascending ids."""
    events = store.get_events_by_artifact_ids([artifact_id])
    produced_by = sorted(e.execution_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT)
    used_by = sorted(
        e.execution_id
        for e in events
        if e.type == metadata_store_pb2.Event.INPUT and e.path.steps and e.path.steps[0].key == input_key
    )
    return produced_by, used_by


def consumers(store: mlmd.MetadataStore, artifact_ids: Iterable[int], input_key: str | None = None) -> dict[int, int]:
    """Execution id -> the artifact (of artifact_ids) it took as input under input_key (any key when None)."""
    ids = list(artifact_ids)
    if not ids:
        return {}
    return {
        e.execution_id: e.artifact_id
        for e in store.get_events_by_artifact_ids(ids)
        if e.type == metadata_store_pb2.Event.INPUT
        and (input_key is None or (e.path.steps and e.path.steps[0].key == input_key))
    }
