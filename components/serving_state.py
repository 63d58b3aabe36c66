"""The serving state, read once for everyone: which versions are in the serving folder, which is
live, and how each got there (a pipeline push, a promotion, a rollback, or an unrecorded copy),
from the folder (sparse_ae/serving_layout.py) and ML Metadata.

Used by the live-model resolver strategies (components/live_model_strategy.py) and by `models`,
`promote` and `rollback` (pipeline/promotion.py), which only format or act on it. `score` reads
the same folder through sparse_ae/serving_layout.py (it has no ML Metadata).

How a version is attributed: the first PushedModel (pushed=1) whose `pushed_destination` is the
version's folder published it (later pushes of the same model found it already live). A version
published by a promotion or rollback that stopped before recording its outcome has no
PushedModel; its intent (a RUNNING execution with the `destination`) names it instead.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from components.lineage import consumers, execution_artifacts
from sparse_ae.serving_layout import normalize_path, serving_versions, version_path

PUSHED_MODEL_TYPE = "PushedModel"
PROMOTION_TYPE = "sparse_ae.ManualPromotion"
ROLLBACK_TYPE = "sparse_ae.Rollback"
MANUAL_TYPES = (PROMOTION_TYPE, ROLLBACK_TYPE)


@dataclasses.dataclass
class ServingVersion:
    """One <serving_dir>/<version>/ folder (complete: holding saved_model.pb) and how it got there."""

    version: int
    path: str
    live: bool
    model_id: int | None = None  # None: no push in ML Metadata published this folder
    action: str = "unrecorded"  # pipeline | promote | rollback | unrecorded
    when: float | None = None  # seconds since the epoch, from the push's record
    user: str = ""
    reason: str = ""
    finished: bool = True  # False: a promotion or rollback published it and stopped before recording so


@dataclasses.dataclass
class Unfinished:
    """A promotion or rollback whose intent is recorded and whose outcome is not: it stopped
    (killed, crashed) between recording the intent and recording what publishing did."""

    action: str  # promote | rollback
    model_id: int
    version: int
    path: str
    when: float
    user: str
    reason: str
    published: bool  # whether the version folder is there, complete


@dataclasses.dataclass
class ServingState:
    """The versions of one serving folder, ascending (the last is live), and the unfinished actions on it."""

    serving_dir: str
    versions: list[ServingVersion]
    unfinished: list[Unfinished] = dataclasses.field(default_factory=list)

    @property
    def live(self) -> ServingVersion | None:
        return self.versions[-1] if self.versions else None


def string_property(item: metadata_store_pb2.Artifact | metadata_store_pb2.Execution, key: str) -> str:
    """A custom string property of an artifact or execution; "" when absent."""
    return item.custom_properties[key].string_value if key in item.custom_properties else ""


def model_pushes(store: mlmd.MetadataStore, model_ids: Iterable[int]) -> dict[int, list[metadata_store_pb2.Artifact]]:
    """Model id -> the PushedModel artifacts with pushed=1 of the executions that took it as input."""
    model_of_execution = consumers(store, set(model_ids), "model")
    result: dict[int, list[metadata_store_pb2.Artifact]] = {}
    for execution_id, found in sorted(execution_artifacts(store, model_of_execution).items()):
        for artifact in found.outputs.values():
            if artifact.type == PUSHED_MODEL_TYPE and artifact.custom_properties["pushed"].int_value == 1:
                result.setdefault(model_of_execution[execution_id], []).append(artifact)
    return result


def manual_executions(
    store: mlmd.MetadataStore, context: metadata_store_pb2.Context
) -> list[metadata_store_pb2.Execution]:
    """The promotions and rollbacks recorded for a pipeline (its context), oldest first."""
    return sorted(
        (e for e in store.get_executions_by_context(context.id) if e.type in MANUAL_TYPES), key=lambda e: e.id
    )


def _version_of(serving_dir: str, destination: str) -> int | None:
    """The version number when destination is <serving_dir>/<version>, else None."""
    path = normalize_path(destination or "/")
    name = os.path.basename(path)
    return int(name) if os.path.dirname(path) == normalize_path(serving_dir) and name.isdigit() else None


def unfinished_actions(
    store: mlmd.MetadataStore, context: metadata_store_pb2.Context, serving_dir: str
) -> list[Unfinished]:
    """The promotions and rollbacks of serving_dir whose outcome was never recorded."""
    complete = set(serving_versions(serving_dir))
    found = []
    for execution in manual_executions(store, context):
        version = _version_of(serving_dir, execution.properties["destination"].string_value)
        if execution.last_known_state != metadata_store_pb2.Execution.RUNNING or version is None:
            continue
        found.append(
            Unfinished(
                action=execution.properties["action"].string_value,
                model_id=execution.properties["model_id"].int_value,
                version=version,
                path=version_path(serving_dir, version),
                when=execution.create_time_since_epoch / 1000,
                user=execution.properties["user"].string_value,
                reason=execution.properties["reason"].string_value,
                published=version in complete,
            )
        )
    return found


def recorded_versions(store: mlmd.MetadataStore, serving_dir: str) -> list[int]:
    """Every version of serving_dir that ML Metadata records a push to (by the pipeline, a
    promotion or a rollback, finished or not), present or deleted since: none may be issued again."""
    destinations = [string_property(p, "pushed_destination") for p in store.get_artifacts_by_type(PUSHED_MODEL_TYPE)]
    for type_name in MANUAL_TYPES:
        destinations += [e.properties["destination"].string_value for e in store.get_executions_by_type(type_name)]
    return [v for v in (_version_of(serving_dir, d) for d in destinations) if v is not None]


def read_serving_state(
    store: mlmd.MetadataStore,
    serving_dir: str,
    model_ids: Iterable[int],
    context: metadata_store_pb2.Context | None = None,
) -> ServingState:
    """The complete versions of serving_dir, each attributed to the push (of one of model_ids)
    that published it; with the pipeline's context also to the unfinished actions that did."""
    unfinished: Sequence[Unfinished] = unfinished_actions(store, context, serving_dir) if context else []
    first_push: dict[str, tuple[int, int, metadata_store_pb2.Artifact]] = {}  # path -> (push id, model id, push)
    for model_id, pushes in model_pushes(store, model_ids).items():
        for push in pushes:
            path = normalize_path(string_property(push, "pushed_destination"))
            if path not in first_push or push.id < first_push[path][0]:
                first_push[path] = (push.id, model_id, push)
    versions = serving_versions(serving_dir)
    result = []
    for version in versions:
        entry = ServingVersion(version=version, path=version_path(serving_dir, version), live=version == versions[-1])
        if entry.path in first_push:
            _, entry.model_id, push = first_push[entry.path]
            entry.when = push.create_time_since_epoch / 1000
            entry.action = string_property(push, "action") or "pipeline"
            entry.user, entry.reason = string_property(push, "user"), string_property(push, "reason")
        else:
            started = next((u for u in unfinished if u.path == entry.path), None)
            if started is not None:
                entry.model_id, entry.action, entry.when = started.model_id, started.action, started.when
                entry.user, entry.reason, entry.finished = started.user, started.reason, False
        result.append(entry)
    return ServingState(serving_dir=serving_dir, versions=result, unfinished=list(unfinished))
