"""Promotion control: what is serving and why, manual promotion past the gate, and rollback.

Everything is read from ML Metadata and the serving directory (never from a side file), and
every manual action is written to ML Metadata like a pipeline component's: an execution of type
`sparse_ae.ManualPromotion` or `sparse_ae.Rollback` (who, when, why, where, the model's metrics)
with an INPUT event from the Model artifact and OUTPUT events to a new `PushedModel` (pushed=1,
pushed_destination, pushed_version, manual=1) and a new `ModelBlessing` (blessed=1,
current_model_id, manual=1), attributed to the pipeline's context. The PushedModel lets the
pipeline's `LiveModelStrategy` resolve the live model as the next run's baseline; the blessing
lets TFX's own `LatestBlessedModelStrategy` (gate.baseline=latest_blessed) see it too.

An action holds the pipeline root's run lock (pipeline/run_lock.py: no pipeline run publishes
meanwhile, and none starts) and goes in three steps: the intent (the execution, RUNNING, with
its input and the version it will publish), the publication, the outcome (COMPLETE with its
outputs, or FAILED with the error). A process stopped in between leaves a RUNNING execution,
which `models` reports as not finished, never a version that nothing accounts for; the next
promotion or rollback records its outcome before anything else.

Publishing reuses the ServingPusher's `publish()` (components/serving_dir.py): a staging folder
and a rename, versions never reused (above every one present or recorded in ML Metadata),
nothing ever deleted (a rollback re-publishes the older version's files under a new, higher
version number, the one TF Serving then serves).
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import json
import os
import time

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.io import fileio
from tfx.utils import io_utils

from components.serving_dir import PublishError, next_version, publish, same_saved_model
from components.serving_state import (
    PROMOTION_TYPE,
    PUSHED_MODEL_TYPE,
    ROLLBACK_TYPE,
    ServingVersion,
    Unfinished,
    manual_executions,
    model_pushes,
    read_serving_state,
    recorded_versions,
    string_property,
)
from pipeline.evaluation_record import read_evaluation
from pipeline.evaluation_text import manual_line, refused_line
from pipeline.mlmd_reader import (
    SERVING_MODEL_DIR,
    artifact_executions,
    execution_artifacts,
    open_store,
    pipeline_models,
)
from pipeline.run_lock import run_lock
from pipeline.run_summary import manual_actions
from pipeline_config import PipelineConfig
from sparse_ae.errors import ConfigError
from sparse_ae.serving_layout import is_complete, live_path, normalize_path, version_path

_STRING, _INT, _DOUBLE = metadata_store_pb2.STRING, metadata_store_pb2.INT, metadata_store_pb2.DOUBLE
_EXECUTION_PROPERTIES = {
    "action": _STRING,
    "user": _STRING,
    "reason": _STRING,
    "time": _STRING,
    "model_id": _INT,
    "model_uri": _STRING,
    "version": _STRING,
    "destination": _STRING,
    "from_version": _STRING,
    "psnr": _DOUBLE,
    "metrics": _STRING,
}


class PromotionRefused(ConfigError):
    """A promotion or rollback that must not happen (no reason, unknown model, already live...)."""


@dataclasses.dataclass
class Candidate:
    """A Model artifact of the pipeline (a trained candidate) and its latest evaluation."""

    model_id: int
    uri: str
    when: float
    dataset: str = ""
    psnr: float | None = None
    worst_class: str = ""
    worst_class_psnr: float | None = None
    blessed: bool | None = None  # None: never evaluated
    threshold: float | None = None  # the gate's PSNR threshold of the deciding evaluation
    refused_by: list[str] = dataclasses.field(default_factory=list)  # the gate's failed conditions, in words
    active_units: float | None = None  # the code's mean active units per image on the eval split
    hoyer: float | None = None  # the code's mean Hoyer sparsity per image
    versions: list[int] = dataclasses.field(default_factory=list)  # serving versions holding it
    manual: list[str] = dataclasses.field(default_factory=list)  # run_summary.manual_actions' sentences


@dataclasses.dataclass
class Inventory:
    versions: list[ServingVersion]  # ascending; the last is live
    candidates: list[Candidate]  # ascending by model id
    unfinished: list[Unfinished] = dataclasses.field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "versions": [dataclasses.asdict(v) for v in self.versions],
                "candidates": [dataclasses.asdict(c) for c in self.candidates],
                "unfinished": [dataclasses.asdict(u) for u in self.unfinished],
            },
            indent=2,
        )


def _store(
    config: PipelineConfig, writable: bool = False
) -> tuple[metadata_store.MetadataStore, metadata_store_pb2.Context]:
    path = config.resolved_metadata_path
    if not os.path.exists(path):  # local by definition: the sqlite file
        raise PromotionRefused(f"no ML Metadata store at {path}: run the pipeline first, or pass --pipeline-root")
    store = open_store(path, writable=writable)
    context = store.get_context_by_type_and_name("pipeline", config.pipeline_name)
    if context is None:
        raise PromotionRefused(f"no pipeline {config.pipeline_name!r} in ML Metadata at {path}")
    return store, context


def _gate_threshold(execution) -> float | None:
    """The overall PSNR lower bound in the Evaluator's eval_config execution property."""
    from pipeline.evaluation import recorded_gate

    return recorded_gate(execution)["psnr_threshold"]


def _candidate(store, model, pushes, versions: list[ServingVersion]) -> Candidate:
    candidate = Candidate(
        model_id=model.id,
        uri=model.uri,
        when=model.create_time_since_epoch / 1000,
        versions=[v.version for v in versions if v.model_id == model.id],
    )
    produced_by, used_by = artifact_executions(store, model.id, "model")
    by_execution = execution_artifacts(store, produced_by + used_by)
    examples = next((by_execution[e].inputs.get("examples") for e in produced_by), None)
    class_names: list[str] = []
    if examples is not None:
        name, config, version = (string_property(examples, key) for key in ("tfds_name", "tfds_config", "tfds_version"))
        candidate.dataset = f"{name}/{config}:{version}"
        class_names = json.loads(string_property(examples, "label_names") or "[]")
    evaluations = [e for e in used_by if "evaluation" in by_execution[e].outputs]
    if evaluations:
        executions = {e.id: e for e in store.get_executions_by_id(evaluations)}
        blessed = [e for e in evaluations if by_execution[e].outputs["blessing"].custom_properties["blessed"].int_value]
        deciding = (blessed or evaluations)[-1]  # the latest blessing evaluation, else the latest one
        candidate.blessed = bool(blessed)
        candidate.threshold = _gate_threshold(executions[deciding])
        evaluation = read_evaluation(by_execution[deciding].outputs["evaluation"].uri)
        candidate.psnr = evaluation.psnr
        candidate.active_units, candidate.hoyer = evaluation.active_units, evaluation.hoyer
        candidate.refused_by = [] if blessed else evaluation.failures
        worst = evaluation.worst_class()
        if worst is not None:
            label, candidate.worst_class_psnr = worst
            candidate.worst_class = class_names[label] if label < len(class_names) else str(label)
    candidate.manual = manual_actions(model.id, pushes.get(model.id, []))
    return candidate


def inventory(config: PipelineConfig) -> Inventory:
    """Every version in the serving directory and every candidate model, from ML Metadata."""
    config = config.absolute()
    store, context = _store(config)
    models = pipeline_models(store, context)
    state = read_serving_state(store, config.serving_dir, models, context)
    pushes = model_pushes(store, models)
    return Inventory(
        versions=state.versions,
        candidates=[_candidate(store, models[i], pushes, state.versions) for i in sorted(models)],
        unfinished=state.unfinished,
    )


def _when(seconds: float | None) -> str:
    return (
        datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        if seconds
        else "-"
    )


def _describe(unfinished: Unfinished) -> str:
    noun = "promotion" if unfinished.action == "promote" else "rollback"
    folder = "published" if unfinished.published else "not published"
    return (
        f"{noun} of model {unfinished.model_id} to version {unfinished.version} started {_when(unfinished.when)} "
        f"by {unfinished.user}, not finished (version {folder}; the next promote or rollback records its outcome)"
    )


def format_inventory(found: Inventory, config: PipelineConfig) -> str:
    """Two tables for the terminal: serving versions (the live one named in words) and candidates."""
    config = config.absolute()
    candidates = {c.model_id: c for c in found.candidates}
    lines = [f"Serving directory {config.serving_dir} (TF Serving serves the highest version):"]
    live = next((v for v in found.versions if v.live), None)
    lines.append(
        f"  Live: version {live.version} (model {live.model_id or '-'}, {live.action})"
        if live
        else "  Live: none (nothing published yet)"
    )
    lines += [f"  Unfinished: {_describe(u)}" for u in found.unfinished]
    header = f"  {'STATE':<5} {'VERSION':<11} {'WHEN (UTC)':<20} {'MODEL':>5} {'PSNR':>6} {'HOW':<9} WHY"
    if found.versions:
        lines.append(header)
    for v in reversed(found.versions):
        psnr = candidates[v.model_id].psnr if v.model_id in candidates else None
        why = f"{v.user}: {v.reason}" if v.reason else ("gate passed" if v.action == "pipeline" else "")
        why += "" if v.finished else " (started, not finished)"
        lines.append(
            f"  {'live' if v.live else '':<5} {v.version:<11} {_when(v.when):<20} "
            f"{v.model_id or '-':>5} "
            f"{f'{psnr:.2f}' if psnr is not None else '-':>6} {v.action:<9} {why}"
        )
    lines.append(f"Candidates (pipeline {config.pipeline_name}, ML Metadata {config.resolved_metadata_path}):")
    lines.append(
        f"  {'MODEL':>5} {'TRAINED (UTC)':<20} {'PSNR':>6} {'ACTIVE':>6} {'WORST CLASS':<20} {'BLESSED':<14} "
        f"{'PUSHED':<24} DATASET"
    )
    for c in reversed(found.candidates):
        worst = f"{c.worst_class} {c.worst_class_psnr:.2f}" if c.worst_class_psnr is not None else "-"
        blessed = (
            "not evaluated"
            if c.blessed is None
            else f"{'yes' if c.blessed else 'no'}" + (f" (>={c.threshold:g})" if c.threshold is not None else "")
        )
        pushed = ",".join(map(str, c.versions)) or "no"
        active = f"{c.active_units:.1f}" if c.active_units is not None else "-"
        lines.append(
            f"  {c.model_id:>5} {_when(c.when):<20} {f'{c.psnr:.2f}' if c.psnr is not None else '-':>6} "
            f"{active:>6} {worst:<20} {blessed:<14} {pushed:<24} {c.dataset}"
        )
        lines += [f"        {refused_line(failure)}" for failure in c.refused_by]
        lines += [f"        {manual_line(note)}" for note in c.manual]
    return "\n".join(lines)


def promotion_preview(config: PipelineConfig, model_reference: str) -> tuple[Candidate, Candidate | None]:
    """(the candidate `promote` would publish, the live version's model or None): what the command
    shows and checks before publishing."""
    config = config.absolute()
    store, context = _store(config)
    model = _find_model(store, context, model_reference)
    found = inventory(config)
    candidates = {c.model_id: c for c in found.candidates}
    live = next((v for v in found.versions if v.live), None)
    return candidates[model.id], candidates.get(live.model_id) if live and live.model_id else None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (e.g. a container without USER): still record something
        return os.environ.get("USER", "unknown")


def _require_reason(reason: str | None, action: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise PromotionRefused(f"{action} needs --reason TEXT: it is recorded in ML Metadata with who ran it")
    return reason


def _find_model(store, context, reference: str) -> metadata_store_pb2.Artifact:
    models = pipeline_models(store, context)
    if reference.isdigit() and int(reference) in models:
        return models[int(reference)]
    path = normalize_path(reference if "://" in reference else os.path.abspath(reference))
    for model in models.values():
        if path in (normalize_path(model.uri), normalize_path(os.path.join(model.uri, SERVING_MODEL_DIR))):
            return model
    raise PromotionRefused(
        f"MODEL {reference!r} is neither the id nor the URI of a Model of pipeline "
        f"{context.name!r} (see `sparse-ae models`)"
    )


def _artifact_type_id(store, name: str) -> int:
    try:
        return store.get_artifact_type(name).id
    except mlmd_errors.NotFoundError:  # not yet registered in this store (a pipeline run registers both)
        return store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))


def _event(kind, key: str) -> metadata_store_pb2.Event:
    event = metadata_store_pb2.Event(type=kind)
    event.path.steps.add().key = key
    event.path.steps.add().index = 0
    return event


@dataclasses.dataclass(frozen=True)
class ManualAction:
    """A promotion or rollback to record: what was published for which model, by whom and why."""

    action: str  # promote | rollback
    model: metadata_store_pb2.Artifact
    destination: str  # the version folder it published
    reason: str
    user: str
    metrics: dict[str, object]  # the model's evaluation (and a rollback's versions)
    from_version: str = ""  # rollback: the version that was live before

    @property
    def type_name(self) -> str:
        return PROMOTION_TYPE if self.action == "promote" else ROLLBACK_TYPE

    def served(self) -> ServingVersion:
        """The version this action made live, as `models` lists it."""
        return ServingVersion(
            version=int(os.path.basename(self.destination)),
            path=self.destination,
            live=True,
            model_id=self.model.id,
            action=self.action,
            when=time.time(),
            user=self.user,
            reason=self.reason,
        )


def _carry_out(store, context, config: PipelineConfig, done: ManualAction, source: str) -> None:
    """Record the intent, publish source as done.destination, record the outcome. Under the run
    lock; a process that stops in between leaves the intent (a RUNNING execution) that `models`
    reports as not finished, never a version that nothing accounts for."""
    execution = _record_intent(store, context, done)
    try:
        publish(source, config.serving_dir, version=int(os.path.basename(done.destination)))
    except PublishError as error:  # nothing was published: the execution says why
        execution.last_known_state = metadata_store_pb2.Execution.FAILED
        execution.custom_properties["error"].string_value = str(error)
        store.put_execution(execution, [], [context])
        raise
    _record_outcome(store, context, config, done, execution)


def _settle_interrupted(store, context, config: PipelineConfig) -> None:
    """Record the outcome of the promotions and rollbacks that stopped after recording their
    intent: COMPLETE with their push when their version was published, else FAILED. Only under
    the run lock, which every action holds: a RUNNING one is then never one in progress."""
    for execution in manual_executions(store, context):
        if execution.last_known_state != metadata_store_pb2.Execution.RUNNING:
            continue
        values = {key: value.string_value for key, value in execution.properties.items()}
        if values.get("destination") and is_complete(values["destination"]):
            [model] = store.get_artifacts_by_id([execution.properties["model_id"].int_value])
            done = ManualAction(
                values["action"],
                model,
                values["destination"],
                values["reason"],
                values["user"],
                json.loads(values.get("metrics") or "{}"),
                values.get("from_version", ""),
            )
            _record_outcome(store, context, config, done, execution)
        else:
            execution.last_known_state = metadata_store_pb2.Execution.FAILED
            execution.custom_properties["error"].string_value = "stopped before its version was published"
            store.put_execution(execution, [], [context])


def _record_intent(store, context, done: ManualAction) -> metadata_store_pb2.Execution:
    """The action's execution, RUNNING, with its input model, before anything is published."""
    execution = _manual_execution(store, done, time.time())
    execution.id, _, _ = store.put_execution(
        execution,
        [(done.model, _event(metadata_store_pb2.Event.INPUT, "model"))],
        [context],
        reuse_context_if_already_exist=True,
    )
    return execution


def _record_outcome(
    store, context, config: PipelineConfig, done: ManualAction, execution: metadata_store_pb2.Execution
) -> None:
    """The execution COMPLETE, with its output push and blessing, in one transaction."""
    # The artifacts' own folders live under pipeline_root, like components' outputs: never the
    # serving folder, which artifact garbage collection must not be able to delete. The blessing's
    # holds TFX's BLESSED marker, as the Evaluator writes it; no archive copy of the model is kept.
    # Named by the execution's id, as TFX names outputs: unique, whatever the clock says.
    folder = os.path.join(config.pipeline_root, done.type_name, str(execution.id))
    blessing_uri = os.path.join(folder, "blessing")
    fileio.makedirs(blessing_uri)  # pipeline_root may be remote (gs://)
    fileio.makedirs(os.path.join(folder, "pushed_model"))
    # write_string_file writes "", which creates the file (a GFile opened and closed unwritten creates nothing).
    io_utils.write_string_file(os.path.join(blessing_uri, "BLESSED"), "")
    version = os.path.basename(done.destination)
    pushed = _manual_artifact(
        store,
        done,
        PUSHED_MODEL_TYPE,
        os.path.join(folder, "pushed_model"),
        {
            "pushed": 1,
            "pushed_destination": done.destination,
            "pushed_version": version,
            **_calibration_properties(done.destination),
        },
    )
    blessing = _manual_artifact(
        store,
        done,
        "ModelBlessing",
        blessing_uri,
        {"blessed": 1, "current_model": done.model.uri, "current_model_id": done.model.id},
    )
    execution.last_known_state = metadata_store_pb2.Execution.COMPLETE
    store.put_execution(
        execution,
        [
            (pushed, _event(metadata_store_pb2.Event.OUTPUT, "pushed_model")),
            (blessing, _event(metadata_store_pb2.Event.OUTPUT, "blessing")),
        ],
        [context],
    )


def _manual_execution(store, done: ManualAction, now: float) -> metadata_store_pb2.Execution:
    """The action's execution, RUNNING, with who, when, why, where and the model's metrics as properties."""
    execution_type = metadata_store_pb2.ExecutionType(name=done.type_name)
    for key, kind in _EXECUTION_PROPERTIES.items():
        execution_type.properties[key] = kind
    type_id = store.put_execution_type(execution_type, can_add_fields=True)
    execution = metadata_store_pb2.Execution(type_id=type_id, last_known_state=metadata_store_pb2.Execution.RUNNING)
    values = {
        "action": done.action,
        "user": done.user,
        "reason": done.reason,
        "time": _when(now),
        "model_id": done.model.id,
        "model_uri": done.model.uri,
        "version": os.path.basename(done.destination),
        "destination": done.destination,
        "from_version": done.from_version,
        "metrics": json.dumps(done.metrics),
    }
    for key, value in values.items():
        if isinstance(value, int):
            execution.properties[key].int_value = value
        else:
            execution.properties[key].string_value = value
    psnr = done.metrics.get("psnr")
    if isinstance(psnr, (int, float)):
        execution.properties["psnr"].double_value = float(psnr)
    return execution


def _manual_artifact(
    store, done: ManualAction, type_name: str, uri: str, custom: dict[str, object]
) -> metadata_store_pb2.Artifact:
    """An output artifact of the action, marked manual with who and why, published like a component's."""
    result = metadata_store_pb2.Artifact(
        type_id=_artifact_type_id(store, type_name), uri=uri, state=metadata_store_pb2.Artifact.LIVE
    )
    custom = {
        **custom,
        "manual": 1,
        "action": done.action,
        "user": done.user,
        "reason": done.reason,
        "state": "published",
    }  # TFX's own artifact state, as on pipeline outputs
    for key, value in custom.items():
        if isinstance(value, int):
            result.custom_properties[key].int_value = value
        elif isinstance(value, float):
            result.custom_properties[key].double_value = value
        else:
            result.custom_properties[key].string_value = str(value)
    return result


def _calibration_properties(model_dir: str) -> dict[str, object]:
    """The calibration a published version carries (its own, in its folder), as PushedModel properties."""
    from sparse_ae.calibration import read_calibration

    calibration = read_calibration(model_dir)
    if calibration is None:
        return {}
    return {
        "anomaly_threshold": calibration.threshold,
        "anomaly_quantile": calibration.quantile,
        "calibration": json.dumps(dataclasses.asdict(calibration)),
    }


def _metrics(candidate: Candidate | None) -> dict[str, object]:
    if candidate is None:
        return {}
    return {
        "psnr": candidate.psnr,
        "worst_class": candidate.worst_class,
        "worst_class_psnr": candidate.worst_class_psnr,
        "blessed": candidate.blessed,
        "threshold": candidate.threshold,
        "dataset": candidate.dataset,
    }


def _next_destination(store, config: PipelineConfig) -> str:
    """<serving_dir>/<a version never used there, nor recorded in ML Metadata>."""
    version = next_version(config.serving_dir, recorded_versions(store, config.serving_dir))
    return version_path(config.serving_dir, version)


def promote(
    config: PipelineConfig, model_reference: str, reason: str | None, user: str | None = None
) -> ServingVersion:
    """Publish a candidate the gate rejected (or any evaluated candidate) as the new live version.

    Under the run lock (PipelineRootBusy while a pipeline run, a promotion or a rollback holds it).
    """
    reason = _require_reason(reason, "promote")
    config = config.absolute()
    store, context = _store(config, writable=True)
    with run_lock(config):
        _settle_interrupted(store, context, config)
        model = _find_model(store, context, model_reference)
        model_path = os.path.join(model.uri, SERVING_MODEL_DIR)
        if not fileio.isdir(model_path):
            raise PromotionRefused(f"model {model.id} has no SavedModel at {model_path}")
        live = live_path(config.serving_dir)
        if live and same_saved_model(model_path, live):
            raise PromotionRefused(f"model {model.id} is already live as version {os.path.basename(live)}")
        found = _candidate(store, model, {}, [])
        if found.blessed is None:
            raise PromotionRefused(f"model {model.id} was never evaluated; only evaluated candidates can be promoted")
        destination = _next_destination(store, config)
        action = ManualAction("promote", model, destination, reason, user or _user(), _metrics(found))
        _carry_out(store, context, config, action, model_path)
    return action.served()


def rollback(
    config: PipelineConfig, to: int | None, reason: str | None, user: str | None = None
) -> tuple[ServingVersion, ServingVersion]:
    """Make an earlier version live again by re-publishing it under a new, higher version.

    Default target: the newest earlier version holding a different SavedModel than the live one.
    Returns (the target version, the new live version). Under the run lock, as promote.
    """
    reason = _require_reason(reason, "rollback")
    config = config.absolute()
    store, context = _store(config, writable=True)
    with run_lock(config):
        _settle_interrupted(store, context, config)
        models = pipeline_models(store, context)
        versions = read_serving_state(store, config.serving_dir, models).versions
        target, live = _rollback_target(config, versions, to)
        if target.model_id is None:
            raise PromotionRefused(
                f"version {target.version} has no push recorded in ML Metadata, so its model "
                f"(and the next run's baseline) is unknown"
            )
        model = models[target.model_id]
        metrics = {**_metrics(_candidate(store, model, {}, [])), "rolled_back_from": live.version}
        metrics["republished"] = target.version
        destination = _next_destination(store, config)
        user = user or _user()
        action = ManualAction("rollback", model, destination, reason, user, metrics, from_version=str(live.version))
        _carry_out(store, context, config, action, target.path)
    return target, action.served()


def _rollback_target(
    config: PipelineConfig, versions: list[ServingVersion], to: int | None
) -> tuple[ServingVersion, ServingVersion]:
    """(the version to re-publish, the live one): --to, or the newest earlier one that differs."""
    if not versions:
        raise PromotionRefused(f"nothing is serving in {config.serving_dir}")
    live = versions[-1]
    if to is None:
        earlier = [v for v in reversed(versions[:-1]) if not same_saved_model(v.path, live.path)]
        if not earlier:
            raise PromotionRefused(
                f"no earlier version in {config.serving_dir} differs from the live one ({live.version})"
            )
        return earlier[0], live
    target = next((v for v in versions if v.version == to), None)
    if target is None:
        raise PromotionRefused(
            f"--to {to}: no such version in {config.serving_dir} "
            f"(versions: {', '.join(str(v.version) for v in versions)})"
        )
    if target.live or same_saved_model(target.path, live.path):
        raise PromotionRefused(f"--to {to}: that model is already live (version {live.version})")
    return target, live
