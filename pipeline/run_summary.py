"""What a pipeline run did, read back from ML Metadata and its artifacts (never from side files)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable

from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.io import fileio
from tfx.utils import io_utils

from components.serving_state import ServingVersion, model_pushes, read_serving_state, string_property
from pipeline.beam_args import BEAM_MODE_PROPERTY
from pipeline.evaluation import recorded_gate
from pipeline.evaluation_record import Evaluation, read_evaluation
from pipeline.evaluation_text import (
    bulk_inference_line,
    decision_lines,
    drift_lines,
    evaluation_lines,
    how_live,
    made_live_line,
    manual_line,
)
from pipeline.failures import recorded_failure
from pipeline.mlmd_reader import (
    SERVING_MODEL_DIR,
    ExecutionArtifacts,
    execution_artifacts,
    latest_run_id,
    node_executions,
    open_store,
    pipeline_models,
)
from pipeline.node_ids import BASELINE_RESOLVER, BULK_INFERRER, EVALUATOR, EXAMPLE_VALIDATOR, PUSHER, TRAINER, output
from sparse_ae.serving_layout import normalize_path

_STATES = {value: name.lower() for name, value in metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass(kw_only=True)
class RunSummary(Evaluation):
    """One run: component outcomes, the evaluation (Evaluation's figures, unset when the run has no
    Evaluator output), the gate's decision and where the model went."""

    run_id: str
    components: list[tuple[str, str]]  # (node id, complete | cached | failed | ...)
    # The code's sparsity as the Trainer measured it on the eval split (metrics.json's code_sparsity):
    # the share of dead units and the distribution of active units per image, which the Evaluator's
    # per-image figures (Evaluation.active_units, .hoyer) do not give
    code_sparsity: dict | None = None
    blessed: bool | None = None
    pushed_path: str | None = None
    anomalies: list[str] = dataclasses.field(default_factory=list)
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)  # node.output key -> uri
    dataset: str = ""  # TFDS name/config:version the examples came from
    class_names: list[str] = dataclasses.field(default_factory=list)
    baseline_model_id: int | None = None  # the Model the Evaluator compared against
    baseline_note: str = ""  # e.g. "model 6, the live version 1795926918 (rollback by ann: bad outputs)"
    manual_actions: list[str] = dataclasses.field(default_factory=list)  # promotions of this run's model
    tuner_trials: list[dict] = dataclasses.field(default_factory=list)  # the Tuner's trials.json, ranked
    tuner_tolerance: float | None = None
    failure: str | None = None  # "node: ErrorType: reason" of the first failed component (pipeline/failures.py)
    beam_mode: str = ""  # the Beam running mode and why, as a local run recorded it (pipeline/local_runner.py)
    bulk_inference: dict | None = None  # BulkInferrer's split scored: count, flagged, threshold
    drift: dict | None = None  # DriftValidator's record: baseline statistics, threshold, measured distances
    # The gate the Evaluator applied (pipeline.evaluation.recorded_gate); the summary gives each figure's bound
    gate: dict[str, float | None] = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(state == "failed" for _, state in self.components)

    def adopt(self, evaluation: Evaluation) -> None:
        """Take the figures and the gate's failures of the run's Evaluator output."""
        for field in dataclasses.fields(Evaluation):
            setattr(self, field.name, getattr(evaluation, field.name))


def read_code_sparsity(model_run_uri: str) -> dict | None:
    """The Trainer's code_sparsity from its metrics.json (None for runs before it was measured)."""
    path = os.path.join(model_run_uri, "metrics.json")
    if not fileio.exists(path):
        return None
    return json.loads(io_utils.read_string_file(path)).get("code_sparsity")


def read_anomalies(uri: str) -> list[str]:
    """ExampleValidator's anomalies as 'split: feature: description' lines (uri may be remote)."""
    from components.strict_example_validator import (
        anomaly_lines,
    )  # local: TFDV only when a run has anomalies output

    return anomaly_lines(uri)


def summarize_run(metadata_path: str, pipeline_name: str, run_id: str | None = None) -> RunSummary:
    """The summary of run_id (default: the latest run) of the pipeline."""
    store = open_store(metadata_path)
    run_id = run_id or latest_run_id(store, pipeline_name)
    executions = node_executions(store, pipeline_name, run_id)
    summary = RunSummary(
        run_id=run_id,
        components=[
            (node, _STATES.get(execution.last_known_state, "unknown"))
            for node, execution in sorted(executions.items(), key=lambda item: item[1].id)
        ],
    )
    failed = [
        (execution.id, node, recorded_failure(execution))
        for node, execution in executions.items()
        if execution.last_known_state == metadata_store_pb2.Execution.FAILED
    ]
    if failed:
        _, node, reason = min(failed)
        summary.failure = f"{node}: {reason or 'no reason recorded (see the log)'}"
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    if run is not None and BEAM_MODE_PROPERTY in run.custom_properties:
        summary.beam_mode = run.custom_properties[BEAM_MODE_PROPERTY].string_value
    found = execution_artifacts(store, [execution.id for execution in executions.values()])
    for node, execution in executions.items():
        for key, artifact in found[execution.id].outputs.items():
            summary.artifacts[f"{node}.{key}"] = artifact.uri
            if key == "evaluation":
                summary.adopt(read_evaluation(artifact.uri))
            elif key == "model_run":
                summary.code_sparsity = read_code_sparsity(artifact.uri)
            elif key == "blessing":
                summary.blessed = bool(artifact.custom_properties["blessed"].int_value)
            elif key == "examples":
                properties = artifact.custom_properties
                summary.dataset = (
                    f"{properties['tfds_name'].string_value}/{properties['tfds_config'].string_value}"
                    f":{properties['tfds_version'].string_value}"
                )
                summary.class_names = json.loads(properties["label_names"].string_value or "[]")
            elif key == "anomalies":
                summary.anomalies = read_anomalies(artifact.uri)
            elif key == "drift" and "drift_measurements" in artifact.custom_properties:
                summary.drift = json.loads(artifact.custom_properties["drift_measurements"].string_value)
            elif key == "tuner_results" and fileio.exists(os.path.join(artifact.uri, "trials.json")):
                content = json.loads(io_utils.read_string_file(os.path.join(artifact.uri, "trials.json")))
                summary.tuner_trials, summary.tuner_tolerance = (
                    content["trials"],
                    content["sparsity_tolerance"],
                )
            elif key == "pushed_model" and artifact.custom_properties["pushed"].int_value:
                summary.pushed_path = artifact.custom_properties["pushed_destination"].string_value
    inference_result, model = output(BULK_INFERRER, "inference_result"), output(TRAINER, "model")
    if inference_result in summary.artifacts and model in summary.artifacts:
        summary.bulk_inference = count_flagged(summary.artifacts[inference_result], summary.artifacts[model])
    summary.gate = recorded_gate(executions.get(EVALUATOR))  # every bound None without an Evaluator
    if EVALUATOR in executions:
        describe_baseline(store, pipeline_name, executions, found, summary)
    return summary


def describe_baseline(
    store,
    pipeline_name: str,
    executions: dict[str, metadata_store_pb2.Execution],
    found: dict[int, ExecutionArtifacts],
    summary: RunSummary,
) -> None:
    """Which model the no-regression check used, whether it is live and how it got there (the
    serving state as `models` reads it); and the manual promotions or rollbacks of this run's
    candidate (`sparse-ae promote` / `rollback`). found: the run's executions' artifacts."""
    evaluator, resolver = executions[EVALUATOR].id, executions.get(BASELINE_RESOLVER)
    inputs = {key: artifact.id for key, artifact in found[evaluator].inputs.items()}
    # The baseline is what the baseline's Resolver resolved (its internal output; the drift check's
    # resolves the live model, which may differ): MLMD keeps one event per artifact and execution,
    # so the Evaluator has no baseline_model event when it equals the model.
    inputs.pop("baseline_model", None)
    if resolver is not None and "model" in found[resolver.id].internal_outputs:
        inputs["baseline_model"] = found[resolver.id].internal_outputs["model"].id
    pushes = model_pushes(store, [i for key, i in inputs.items() if key in ("model", "baseline_model")])

    model_id = inputs.get("model")
    if model_id is not None:
        summary.manual_actions = manual_actions(model_id, pushes.get(model_id, []))
    baseline = inputs.get("baseline_model")
    if baseline is None:
        return
    summary.baseline_model_id = baseline
    live = _live_version_of(store, pipeline_name, baseline, pushes.get(baseline, []))
    if live is not None:
        how = how_live(live.action, live.user, live.reason) + ("" if live.finished else ", not finished")
        summary.baseline_note = f"model {baseline}, the live version {live.version} ({how})"
    elif pushes.get(baseline):
        summary.baseline_note = f"model {baseline} (latest blessed; no longer the live version)"
    else:
        summary.baseline_note = f"model {baseline} (latest blessed; never pushed)"


def _live_version_of(
    store, pipeline_name: str, model_id: int, pushes: list[metadata_store_pb2.Artifact]
) -> ServingVersion | None:
    """The live version of a serving folder model_id was pushed to, when that model is what it
    serves: read by components/serving_state.py, as `models` and the baseline's resolver read it."""
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    models: Iterable[int] = pipeline_models(store, context) if context is not None else [model_id]
    serving_dirs = {os.path.dirname(normalize_path(string_property(p, "pushed_destination"))) for p in pushes}
    for serving_dir in sorted(serving_dirs):
        live = read_serving_state(store, serving_dir, models, context).live
        if live is not None and live.model_id == model_id:
            return live
    return None


def manual_actions(model_id: int, pushes: list[metadata_store_pb2.Artifact]) -> list[str]:
    """The promotions and rollbacks among model_id's pushes (components.serving_state.model_pushes), in words."""
    return [
        made_live_line(
            model_id,
            string_property(push, "action"),
            string_property(push, "user"),
            string_property(push, "reason"),
            string_property(push, "pushed_version"),
        )
        for push in pushes
        if string_property(push, "action")
    ]


def format_summary(summary: RunSummary) -> str:
    """A human-readable report of the run for the terminal (the sentences of pipeline/evaluation_text.py)."""
    class_names = summary.class_names
    lines = [f"Run {summary.run_id}" + (f" on {summary.dataset}" if summary.dataset else "")]
    lines += [f"  {node:<32} {state}" for node, state in summary.components]
    if summary.beam_mode:
        lines.append(f"Beam: {summary.beam_mode}")
    if summary.failure:
        lines.append(f"Failed at {summary.failure}")
    if summary.anomalies:
        lines.append("Data anomalies (ExampleValidator):")
        lines += [f"  {item}" for item in summary.anomalies]
    elif {(EXAMPLE_VALIDATOR, "complete"), (EXAMPLE_VALIDATOR, "cached")} & set(summary.components):
        lines.append("Data anomalies: none")
    drift = drift_lines(summary.drift)
    lines += drift[:1] + [f"  {line}" for line in drift[1:]]
    if summary.tuner_trials:
        from sparse_ae.tuning import TrialResult, format_trials_table

        lines.append(f"Tuner trials ({len(summary.tuner_trials)}, best first; the Trainer used rank 1):")
        table = format_trials_table([TrialResult(**t) for t in summary.tuner_trials], summary.tuner_tolerance)
        lines += [f"  {line}" for line in table.splitlines()]
    if summary.psnr is not None:
        lines += evaluation_lines(
            summary, summary.gate, summary.code_sparsity, summary.baseline_note, summary.baseline_model_id
        )
        for label, value in sorted(summary.class_psnr.items()):
            name = class_names[label] if class_names and label < len(class_names) else str(label)
            lines.append(f"  class {label} {name:<14} {value:.2f} dB")
    decision = decision_lines(summary.blessed, summary.failures)
    lines += decision[:1] + [f"  {line}" for line in decision[1:]]
    if summary.bulk_inference:
        lines.append(bulk_inference_line(summary.bulk_inference))
    push_failed = (PUSHER, "failed") in summary.components  # its error is the CLI's last line
    lines.append(
        f"Pushed: {summary.pushed_path}"
        if summary.pushed_path
        else "Pushed: no (ServingPusher failed)"
        if push_failed
        else "Pushed: no"
    )
    lines += [manual_line(action) for action in summary.manual_actions]
    return "\n".join(lines)


def count_flagged(inference_uri: str, model_uri: str) -> dict | None:
    """BulkInferrer's prediction logs: how many per-image MSEs exceed the model's stored calibration."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from sparse_ae.calibration import read_calibration

    calibration = read_calibration(os.path.join(model_uri, SERVING_MODEL_DIR))
    files = tf.io.gfile.glob(os.path.join(inference_uri, "prediction_logs-*.gz"))
    if calibration is None or not files:
        return None
    count = flagged = 0
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        outputs = prediction_log_pb2.PredictionLog.FromString(record).predict_log.response.outputs
        mse = tf.make_ndarray(outputs["mse"])
        count += mse.size
        flagged += int((mse > calibration.threshold).sum())
    return {
        "count": count,
        "flagged": flagged,
        "threshold": calibration.threshold,
        "quantile": calibration.quantile,
    }
