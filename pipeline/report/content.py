"""What the run report shows, gathered from ML Metadata and the run's artifacts; no drawing here.

Everything the figures draw is in `ReportData` (and written as report_data.json beside the HTML),
so a test can compare it with the artifacts read independently.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Any

import numpy as np

from pipeline.evaluation import GATE_KEYS
from pipeline.evaluation_text import (
    Gate,
    bulk_inference_line,
    drift_lines,
    evaluation_lines,
    manual_line,
    refused_line,
)
from pipeline.mlmd_reader import (
    SERVING_MODEL_DIR,
    execution_outputs,
    node_executions,
    open_store,
    resolve_run,
)
from pipeline.node_ids import (
    EVALUATOR,
    EXAMPLE_GEN,
    EXAMPLE_VALIDATOR,
    PUSHER,
    SCHEMA_GEN,
    STATISTICS_GEN,
    TRAINER,
)
from pipeline.run_summary import RunSummary, summarize_run
from sparse_ae.train import METRICS_FILE  # the Trainer's, in its model_run artifact

SAMPLE_SIZE = 1000  # eval examples run through the model for reconstructions and latent means
PER_CLASS = 4  # originals shown per class
EVAL_SPLIT = "eval"


@dataclasses.dataclass
class Sample:
    """Eval images run through the trained SavedModel (not serialized: arrays)."""

    images: np.ndarray  # uint8 (n, H, W, C)
    labels: np.ndarray
    reconstructions: np.ndarray  # uint8
    psnr: np.ndarray  # dB per image
    latent: np.ndarray  # (n, latent_dim)


@dataclasses.dataclass
class ReportData:
    """One run's report content: plain numbers and text, JSON-serializable except `sample`."""

    pipeline_name: str
    run_id: str
    pipeline_root: str
    metadata_path: str
    generated: str
    summary: RunSummary
    gate: dict[str, float | None]  # pipeline.evaluation.GATE_KEYS
    verdict: dict[str, Any]  # status (blessed | not-blessed | failed | none), headline, details
    components: list[dict[str, Any]]  # node, state, execution id
    training: dict[str, Any] | None = None  # history, sparsity_target, best_epoch, epochs_run, config
    sparsity: dict[str, Any] | None = None  # sparsity_target, latent_activation, unit_means, sample_count
    class_psnr: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # label, name, psnr, baseline
    reconstructions: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # label, name, indices, psnr
    statistics: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # split -> figures
    lineage: list[dict[str, str]] = dataclasses.field(default_factory=list)  # what, value, where
    missing: list[str] = dataclasses.field(default_factory=list)  # what the report cannot show, and why
    sample: Sample | None = None

    def to_json(self) -> dict[str, Any]:
        content = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in ("sample", "summary")
        }
        summary = dataclasses.asdict(self.summary)
        summary["class_psnr"] = {str(k): v for k, v in self.summary.class_psnr.items()}
        summary["baseline_class_psnr"] = {str(k): v for k, v in self.summary.baseline_class_psnr.items()}
        content["summary"] = summary
        return content


@dataclasses.dataclass
class RunRecord:
    """One run as the section readers see it: each node's execution and outputs, and the run summary."""

    executions: dict[str, Any]  # node -> its MLMD Execution in this run
    outputs: dict[str, dict[str, Any]]  # node -> output key -> MLMD Artifact
    summary: RunSummary

    def output(self, node: str, key: str) -> Any | None:
        return self.outputs.get(node, {}).get(key)

    def absent(self, what: str, node: str) -> str:
        """'what: why', why being the node's state in this run (or that it did not run)."""
        state = dict(self.summary.components).get(node)
        return f"{what}: {node} did not run in this run" if state is None else f"{what}: {node}: {state}"


def gather(
    pipeline_root: str,
    run_id: str | None = None,
    pipeline_name: str | None = None,
    metadata_path: str | None = None,
    summary: RunSummary | None = None,
    sample_size: int = SAMPLE_SIZE,
    per_class: int = PER_CLASS,
) -> ReportData:
    """Everything the report of one run shows (default: the latest run); what is absent is listed in `missing`."""
    pipeline_root = pipeline_root if "://" in pipeline_root else os.path.abspath(pipeline_root)
    metadata_path, pipeline_name, run_id = resolve_run(pipeline_root, run_id, pipeline_name, metadata_path)
    run = read_run(metadata_path, pipeline_name, run_id, summary)
    gate = run.summary.gate or dict.fromkeys(GATE_KEYS)  # the summary read it from the Evaluator's execution
    data = ReportData(
        pipeline_name=pipeline_name,
        run_id=run_id,
        pipeline_root=pipeline_root,
        metadata_path=metadata_path,
        generated=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        summary=run.summary,
        gate=gate,
        verdict=verdict(run.summary, gate, run.output(PUSHER, "pushed_model")),
        components=[
            {"node": node, "state": state, "execution": run.executions[node].id}
            for node, state in run.summary.components
        ],
    )
    gather_training(run, data)
    gather_class_psnr(run, data)
    gather_sample(run, data, sample_size, per_class)
    gather_statistics(run, data)
    if EXAMPLE_VALIDATOR not in dict(run.summary.components):
        data.missing.append("Anomaly check: ExampleValidator did not run in this run")
    data.lineage = lineage(run.summary, run.outputs, metadata_path)
    return data


def read_run(metadata_path: str, pipeline_name: str, run_id: str, summary: RunSummary | None = None) -> RunRecord:
    """The run's executions and outputs from ML Metadata, and its summary (summary reused when it is this run's)."""
    store = open_store(metadata_path)
    executions = node_executions(store, pipeline_name, run_id)
    outputs = {node: execution_outputs(store, execution.id) for node, execution in executions.items()}
    if summary is None or summary.run_id != run_id:
        summary = summarize_run(metadata_path, pipeline_name, run_id)
    return RunRecord(executions=executions, outputs=outputs, summary=summary)


def gather_training(run: RunRecord, data: ReportData) -> None:
    """The Training section: the Trainer's per-epoch history (its metrics.json)."""
    import tensorflow as tf

    model_run = run.output(TRAINER, "model_run")
    metrics_path = os.path.join(model_run.uri, METRICS_FILE) if model_run else None
    if metrics_path and tf.io.gfile.exists(metrics_path):
        data.training = read_training(metrics_path)
    else:
        data.missing.append(run.absent("Training curves (the Trainer's metrics.json)", TRAINER))


def gather_class_psnr(run: RunRecord, data: ReportData) -> None:
    """The per-class PSNR section: the Evaluator's figures, the baseline's beside them."""
    summary = run.summary
    data.class_psnr = [
        {
            "label": label,
            "name": _class_name(summary.class_names, label),
            "psnr": value,
            "baseline": summary.baseline_class_psnr.get(label),
        }
        for label, value in sorted(summary.class_psnr.items())
    ]
    if not data.class_psnr:
        data.missing.append(run.absent("Per-class PSNR (the Evaluator's TFMA output)", EVALUATOR))


def gather_sample(run: RunRecord, data: ReportData, sample_size: int, per_class: int) -> None:
    """The reconstructions and sparsity sections: eval images run through the trained SavedModel."""
    import tensorflow as tf

    examples = run.output(EXAMPLE_GEN, "examples")
    model = run.output(TRAINER, "model")
    model_dir = os.path.join(model.uri, SERVING_MODEL_DIR) if model else None
    if examples is None:
        data.missing.append(run.absent("Reconstructions and latent activations (no Examples)", EXAMPLE_GEN))
        return
    if model_dir is None or not tf.io.gfile.isdir(model_dir):
        data.missing.append(run.absent("Reconstructions and latent activations (no trained SavedModel)", TRAINER))
        return
    split = _eval_split(run.executions.get(EVALUATOR))
    model_config = (data.training or {}).get("config", {})
    data.sample = run_sample(model_dir, examples.uri, split, sample_size, model_config)
    target = (data.training or {}).get("sparsity_target", model_config.get("sparsity_target"))
    code = run.summary.code_sparsity or {}
    data.sparsity = {
        "sparsity_target": target,
        "latent_activation": model_config.get("latent_activation"),
        "latent_top_k": model_config.get("latent_top_k"),
        "unit_means": [float(v) for v in data.sample.latent.mean(axis=0)],
        # each unit's largest value on the eval split (the Trainer's): "active" is measured against it
        "unit_scale": code.get("unit_scale"),
        "dead_fraction": code.get("dead_fraction"),
        "sample_count": int(len(data.sample.labels)),
        "split": split,
    }
    data.reconstructions = pick_per_class(data.sample, run.summary.class_names, per_class)
    if target is None:
        data.missing.append("sparsity_target: not recorded in the Trainer's metrics.json")


def gather_statistics(run: RunRecord, data: ReportData) -> None:
    """The data section: StatisticsGen's per-split figures."""
    statistics = run.output(STATISTICS_GEN, "statistics")
    if statistics is not None:
        data.statistics = read_statistics(statistics.uri)
    if not data.statistics:
        data.missing.append(run.absent("Data statistics", STATISTICS_GEN))


def _class_name(names: list[str], label: int) -> str:
    return names[label] if 0 <= label < len(names) else str(label)


def _eval_split(evaluator) -> str:
    """The split the Evaluator evaluated (the report samples the same one)."""
    if evaluator is not None and "example_splits" in evaluator.custom_properties:
        splits = json.loads(evaluator.custom_properties["example_splits"].string_value or "null")
        if splits:
            return splits[0]
    return EVAL_SPLIT


def read_training(metrics_path: str) -> dict[str, Any]:
    """The Trainer's per-epoch history and the config it trained (sparse_ae/train.py's metrics.json; any
    filesystem TensorFlow knows)."""
    from sparse_ae.storage import read_text

    content = json.loads(read_text(metrics_path))
    config = content.get("config", {})
    return {
        "history": content.get("history", {}),
        "path": metrics_path,
        "sparsity_target": content.get("sparsity_target", config.get("sparsity_target")),
        "best_epoch": content.get("best_epoch"),
        "epochs_run": content.get("epochs_run"),
        "best_val_psnr": content.get("best_val_psnr"),
        "config": config,
    }


def read_eval_examples(examples_uri: str, split: str, count: int, image_shape) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` examples of a split of ExampleGen's output: uint8 images and labels."""
    import tensorflow as tf

    from sparse_ae.config import SparseAEConfig
    from sparse_ae.data import images_from_examples

    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"no files in {examples_uri}/Split-{split}")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    records = tf.data.TFRecordDataset(files, compression_type=compression).take(count).batch(count)
    serialized = next(iter(records))
    images, labels = images_from_examples(serialized, SparseAEConfig(image_shape=tuple(image_shape)))
    return images.numpy(), labels.numpy()


def run_sample(model_dir: str, examples_uri: str, split: str, count: int, model_config: dict[str, Any]) -> Sample:
    """Reconstruct the first `count` eval images with the exported SavedModel (`reconstruct_uint8`)."""
    import tensorflow as tf

    from sparse_ae.config import DEFAULT_IMAGE_SHAPE
    from sparse_ae.data import to_uint8
    from sparse_ae.serving_layout import RECONSTRUCT_UINT8

    image_shape = model_config.get("image_shape", DEFAULT_IMAGE_SHAPE)
    images, labels = read_eval_examples(examples_uri, split, count, image_shape)
    outputs = tf.saved_model.load(model_dir).signatures[RECONSTRUCT_UINT8](images=tf.constant(images))
    return Sample(
        images=images,
        labels=labels,
        reconstructions=to_uint8(outputs["reconstruction"].numpy()),
        psnr=outputs["psnr"].numpy(),
        latent=outputs["latent"].numpy(),
    )


def pick_per_class(sample: Sample, names: list[str], per_class: int) -> list[dict[str, Any]]:
    """The first `per_class` sampled images of every class, with their PSNR."""
    picked = []
    for label in sorted(set(int(v) for v in sample.labels)):
        indices = [int(i) for i in np.flatnonzero(sample.labels == label)[:per_class]]
        picked.append(
            {
                "label": label,
                "name": _class_name(names, label),
                "indices": indices,
                "psnr": [float(sample.psnr[i]) for i in indices],
            }
        )
    return picked


def read_statistics(statistics_uri: str) -> dict[str, dict[str, Any]]:
    """Per split: example count and each feature's numeric summary (StatisticsGen's FeatureStats.pb;
    any filesystem TensorFlow knows)."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import statistics_pb2

    result = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(statistics_uri, "Split-*", "FeatureStats.pb"))):
        split = os.path.basename(os.path.dirname(path))[len("Split-") :]
        with tf.io.gfile.GFile(path, "rb") as handle:
            stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(handle.read())
        for dataset in stats.datasets:
            features = {}
            for feature in dataset.features:
                name = ".".join(feature.path.step) or feature.name
                if feature.HasField("num_stats"):
                    numbers = feature.num_stats
                    features[name] = {
                        "min": numbers.min,
                        "max": numbers.max,
                        "mean": numbers.mean,
                        "missing": int(numbers.common_stats.num_missing),
                        "values_per_example": numbers.common_stats.avg_num_values,
                    }
            result[split] = {"examples": int(dataset.num_examples), "features": features}
    return result


def verdict(summary: RunSummary, gate: Gate, pushed_model=None) -> dict[str, Any]:
    """The gate's decision in words: status, a one-line headline and the details behind it (the
    run summary's sentences, pipeline/evaluation_text.py, with the gate's bounds)."""
    details = evaluation_lines(summary, gate, summary.code_sparsity, summary.baseline_note, summary.baseline_model_id)
    failed = [node for node, state in summary.components if state == "failed"]
    if summary.blessed:
        status = "blessed"
        if summary.pushed_path:
            version = os.path.basename(summary.pushed_path)
            properties = pushed_model.custom_properties if pushed_model is not None else {}
            if "already_live" in properties and properties["already_live"].int_value:
                headline = f"BLESSED: already live as version {version} ({summary.pushed_path}); nothing new published"
            else:
                headline = f"BLESSED and pushed to {summary.pushed_path} (version {version})"
        elif failed:
            headline = f"BLESSED, but not pushed: {', '.join(failed)} failed"
        else:
            headline = "BLESSED, not pushed (the ServingPusher did not run)"
    elif summary.blessed is False:
        status = "not-blessed"
        reason = summary.failures[0] if summary.failures else "the gate's thresholds were not met"
        headline = f"NOT BLESSED: {reason}"
        details += [refused_line(failure) for failure in summary.failures[1:]]  # the headline says the first
    elif failed:
        status, headline = "failed", f"RUN FAILED at {', '.join(failed)}: no model was evaluated"
        # pipeline/failures.py records the reason on the failed execution; the summary reads it back.
        details.append(f"Failed at {summary.failure or failed[0] + ': no reason recorded (see the log)'}")
    else:
        status, headline = "none", "NO VERDICT: the Evaluator did not run in this run"
    details += [manual_line(action) for action in summary.manual_actions]
    drift = drift_lines(summary.drift)  # issue 16: the header, then each feature's sentence, on one line
    details += [" ".join([drift[0], "; ".join(drift[1:])]).strip()] if drift else []
    if summary.bulk_inference:
        details.append(bulk_inference_line(summary.bulk_inference))
    return {"status": status, "headline": headline, "details": details}


def lineage(summary: RunSummary, outputs: dict[str, dict[str, Any]], metadata_path: str) -> list[dict[str, str]]:
    """Where the run's inputs and outputs are: dataset, examples, model run, model, evaluation, push."""

    def artifact(node: str, key: str) -> Any | None:
        return outputs.get(node, {}).get(key)

    rows = [{"what": "ML Metadata", "value": f"run {summary.run_id}", "where": metadata_path}]
    examples = artifact(EXAMPLE_GEN, "examples")
    rows.append(
        {
            "what": "Dataset (TFDS name/config:version)",
            "value": summary.dataset or "-",
            "where": f"Examples artifact {examples.id}: {examples.uri}" if examples else "no Examples artifact",
        }
    )
    for node, key, what in (
        (STATISTICS_GEN, "statistics", "Statistics"),
        (SCHEMA_GEN, "schema", "Schema"),
        (EXAMPLE_VALIDATOR, "anomalies", "Anomalies"),
        (TRAINER, "model_run", "Model run"),
        (TRAINER, "model", "Model (candidate)"),
        (EVALUATOR, "evaluation", "Evaluation"),
        (EVALUATOR, "blessing", "Blessing"),
    ):
        found = artifact(node, key)
        rows.append(
            {
                "what": what,
                "value": f"artifact {found.id}" if found else "-",
                "where": found.uri if found else "not produced in this run",
            }
        )
    rows.append(
        {
            "what": "Baseline",
            "value": summary.baseline_note
            or (f"model {summary.baseline_model_id}" if summary.baseline_model_id else "none"),
            "where": "",
        }
    )
    pushed = artifact(PUSHER, "pushed_model")
    version = os.path.basename(summary.pushed_path) if summary.pushed_path else None
    rows.append(
        {
            "what": "Pushed version",
            "value": f"version {version}" if version else "not pushed",
            "where": summary.pushed_path or (f"PushedModel artifact {pushed.id}" if pushed else ""),
        }
    )
    return rows
