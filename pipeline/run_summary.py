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
from pipeline.evaluation_record import Evaluation, read_evaluation
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
    for push in pushes.get(model_id, []) if model_id is not None else []:
        if string_property(push, "action"):
            how = _how(string_property(push, "action"), string_property(push, "user"), string_property(push, "reason"))
            summary.manual_actions.append(
                f"model {model_id} made live by {how} (version {string_property(push, 'pushed_version')})"
            )
    baseline = inputs.get("baseline_model")
    if baseline is None:
        return
    summary.baseline_model_id = baseline
    live = _live_version_of(store, pipeline_name, baseline, pushes.get(baseline, []))
    if live is not None:
        how = _how(live.action, live.user, live.reason) + ("" if live.finished else ", not finished")
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


def _how(action: str, user: str, reason: str) -> str:
    """How a version became live, in words: a pipeline push, or a manual action with who and why."""
    if action in ("", "pipeline"):
        return "pushed by the pipeline"
    return f"{'manual promotion' if action == 'promote' else action} by {user}: {reason}"


def format_summary(summary: RunSummary) -> str:
    """A human-readable report of the run for the terminal."""
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
    lines += format_drift(summary.drift)
    if summary.tuner_trials:
        from sparse_ae.tuning import TrialResult, format_trials_table

        lines.append(f"Tuner trials ({len(summary.tuner_trials)}, best first; the Trainer used rank 1):")
        table = format_trials_table([TrialResult(**t) for t in summary.tuner_trials], summary.tuner_tolerance)
        lines += [f"  {line}" for line in table.splitlines()]
    if summary.psnr is not None:
        baseline = (
            f" (baseline {summary.baseline_psnr:.2f} dB, change {summary.psnr - summary.baseline_psnr:+.2f})"
            if summary.baseline_psnr is not None
            else " (no baseline: first blessed model)"
        )
        lines.append(f"Eval PSNR: {summary.psnr:.2f} dB over {summary.example_count} examples{baseline}")
        if summary.baseline_note:
            lines.append(f"Baseline: {summary.baseline_note}")
        lines += format_code_figures(summary)
        for label, value in sorted(summary.class_psnr.items()):
            name = class_names[label] if class_names and label < len(class_names) else str(label)
            lines.append(f"  class {label} {name:<14} {value:.2f} dB")
    if summary.blessed is not None:
        lines.append("Blessed: yes" if summary.blessed else "Blessed: no")
        lines += [f"  {failure}" for failure in summary.failures]
    if summary.bulk_inference:
        found = summary.bulk_inference
        lines.append(
            f"Bulk inference: {found['flagged']} of {found['count']} images flagged as anomalous "
            f"({100 * found['flagged'] / max(found['count'], 1):.2f}%; MSE > {found['threshold']:.6g}, the "
            f"model's {found['quantile']:g} quantile)"
        )
    push_failed = (PUSHER, "failed") in summary.components  # its error is the CLI's last line
    lines.append(
        f"Pushed: {summary.pushed_path}"
        if summary.pushed_path
        else "Pushed: no (ServingPusher failed)"
        if push_failed
        else "Pushed: no"
    )
    lines += [f"Manually: {action}" for action in summary.manual_actions]
    return "\n".join(lines)


def format_code_figures(summary: RunSummary) -> list[str]:
    """The code's sparsity per image and the linear baselines, for the terminal."""
    lines = []
    if summary.active_units is not None:
        dead = summary.code_sparsity.get("dead_fraction") if summary.code_sparsity else None
        lines.append(
            f"Code sparsity per image: {summary.active_units:.1f} active units"
            + (f" of {summary.code_sparsity['units']}" if summary.code_sparsity else "")
            + (f", Hoyer {summary.hoyer:.2f}" if summary.hoyer is not None else "")
            + (f", dead units {dead:.0%}" if dead is not None else "")
        )
    if summary.psnr_active_only is not None and summary.zeroing_cost is not None:
        lines.append(
            f"With only the active units decoded: {summary.psnr_active_only:.2f} dB "
            f"({summary.zeroing_cost:.2f} dB lost)"
        )
    for label, psnr in (
        (f"PCA-{active_size(summary)}, the code's active size", summary.linear_baseline_psnr_at_active),
        ("PCA of the full code size", summary.linear_baseline_psnr),
    ):
        if psnr is not None and summary.psnr is not None:
            lines.append(f"Linear baseline ({label}): {psnr:.2f} dB; the model {summary.psnr - psnr:+.2f} dB")
    if summary.mean_activation is not None:
        ratio = (
            f" ({summary.activation_to_target:.2f} x sparsity_target)"
            if summary.activation_to_target is not None
            else ""
        )
        lines.append(f"Mean latent activation: {summary.mean_activation:.4f}{ratio}")
    return lines


def active_size(summary: RunSummary) -> str:
    """k of PCA-k at the code's active size: the rounded mean active units, as the Trainer chose it."""
    return "k" if summary.active_units is None else str(max(1, round(summary.active_units)))


def format_drift(drift: dict | None) -> list[str]:
    """The drift check's line(s): each feature's distance from the live model's data, and the threshold."""
    if drift is None:
        return []
    if not drift.get("baseline"):
        return ["Drift: no baseline (no live model recorded yet); nothing compared"]
    threshold = drift.get("threshold")
    limit = f"threshold {threshold:g}" if threshold is not None else "no threshold: report only"
    lines = [
        f"Drift of the {drift.get('split', 'train')} split from the live model's data "
        f"(statistics {drift.get('baseline_id')}; {limit}):"
    ]
    for item in drift.get("measured", []):
        over = threshold is not None and item["value"] > threshold
        lines.append(f"  {item['feature']:<12} {item['measure']} {item['value']:.4f}{'  EXCEEDED' if over else ''}")
    return lines


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
