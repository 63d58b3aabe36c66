"""The one configuration of the whole pipeline: typed, validated, overridable with --set key=value.

The pipeline, the runners and the model config are all derived from `PipelineConfig`; nested
keys are dotted on the command line (`--set model.sparsity_target=0.02`, `--set gate.psnr_threshold=20`).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable

import pydantic
from pydantic import Field

from sparse_ae.config import DatasetConfig, SparseAEConfig, StrictModel, build_config, merge, parse_overrides
from sparse_ae.tuning import TunerConfig

METADATA_FILE = "metadata.sqlite"  # the sqlite ML Metadata store in pipeline_root, unless metadata_path says otherwise


class GateConfig(StrictModel):
    """When a trained model is blessed and pushed."""

    psnr_threshold: float = Field(
        20.0,
        description="Minimum mean eval PSNR (dB) to bless: a floor for any dataset of this kind (images in "
        "[-1, 1]; docs/model-defaults.md explains the figure).",
    )
    change_tolerance: float = Field(
        0.5, ge=0.0, description="Largest PSNR drop (dB) allowed against the baseline model (gate.baseline)."
    )
    class_psnr_floor: float | None = Field(None, description="Optional minimum PSNR (dB) for every class.")
    max_active_units: float | None = Field(
        8.0,
        gt=0.0,
        description="Largest mean number of active latent units per image on the eval split (a unit is active "
        'on an image above 10 % of its largest eval value; docs/pipeline.md, "Sparsity per image"); none: '
        "reported, not gated.",
    )
    min_hoyer: float | None = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="Smallest mean Hoyer sparsity of the code per image (0: every unit equal, 1: one unit); "
        "none: reported, not gated.",
    )
    max_zeroing_cost: float | None = Field(
        0.5,
        ge=0.0,
        description="Largest eval PSNR loss (dB) when every inactive unit is set to 0 before decoding: the "
        "active units must carry the image; none: reported, not gated.",
    )
    sparsity_tolerance: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Largest relative distance of the eval split's mean latent activation from model.sparsity_target "
        "(0.1: within ±10 %); none: reported, not gated (a dense code of weak activations meets it).",
    )
    min_gain_over_linear: float | None = Field(
        3.0,
        description="Minimum eval PSNR gain (dB) over PCA with as many components as the code's mean active "
        "units per image (fitted on the train split): the linear code of the same size; none: reported, "
        "not gated.",
    )
    min_gain_over_full_linear: float | None = Field(
        None,
        description="Minimum eval PSNR gain (dB) over PCA with as many components as latent units (a dense "
        "code's linear baseline; a sparse code is not meant to match it); none: reported, not gated.",
    )
    # live: the model live in serving_dir after manual promotions and rollbacks (a custom resolver
    # strategy); latest_blessed: TFX's built-in strategy, the one Kubeflow V2 can compile.
    baseline: str = Field(
        "live",
        pattern=r"^(live|latest_blessed)$",
        description="Baseline of the no-regression check: live (the model served from serving_dir) or "
        "latest_blessed (TFX's built-in strategy; Kubeflow V2 compiles only this).",
    )


class EvaluationConfig(StrictModel):
    """How the Evaluator computes the gate's metrics (the metrics, slices and output are the same)."""

    engine: str = Field(
        "batched",
        pattern=r"^(batched|tfma)$",
        description="batched: TFMA with the pipeline's own extractors and metrics on whole record "
        "batches (pipeline/evaluator_module.py; several times faster per example); tfma: TFMA's "
        "default per-example extractors and MeanPrediction/ExampleCount. Both give the same "
        "metrics, slices, blessing and evaluation output (TFMA's loaders, the run summary and the "
        "report read either).",
    )


class ScoringConfig(StrictModel):
    """Anomaly scoring with the shipped model (`sparse-ae score`, docs/pipeline.md "Scoring new images")."""

    anomaly_quantile: float = Field(
        0.99,
        gt=0.0,
        lt=1.0,
        description="Quantile of the model's per-image eval MSE stored with it as the anomaly "
        "threshold: an image with a larger MSE is flagged.",
    )
    bulk_inference: bool = Field(
        False,
        description="Score scoring.bulk_inference_split with the model just blessed (TFX BulkInferrer); the "
        "run summary shows how many images its calibration flags.",
    )
    bulk_inference_split: str = Field(
        "eval", pattern=r"^(train|eval)$", description="The TFX split the BulkInferrer scores."
    )


class DriftConfig(StrictModel):
    """The check of this run's data against the data of the run that produced the live model."""

    enabled: bool = Field(
        True,
        description="Compare this run's data with the live model's (DriftValidator); "
        "Kubeflow V2 compiles without it (custom resolver).",
    )
    threshold: float | None = Field(
        None,
        gt=0.0,
        description="Largest allowed distance (Jensen-Shannon divergence) of a feature's train-split "
        "distribution from the live model's; none: only report the distances.",
    )
    features: list[str] = Field(["image", "label"], min_length=1, description="Features compared (comma-separated).")

    @pydantic.field_validator("features", mode="before")
    @classmethod
    def _one_feature_is_a_list(cls, value):
        return value.split(",") if isinstance(value, str) else value


# Ready-to-fill beam_pipeline_args for the runners that scale Beam components out (docs/running-at-scale.md,
# "Beam"); replace the <...> placeholders. None of them can execute on a machine
# without the cluster; by default Beam's FnApiRunner (the DirectRunner's engine) runs in one of the
# two direct_* modes (pipeline/beam_args.py chooses, and names the runner).
BEAM_RUNNER_TEMPLATES: dict[str, list[str]] = {
    "direct_in_memory": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    "direct_multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=0"],
    "dataflow": [
        "--runner=DataflowRunner",
        "--project=<gcp-project>",
        "--region=<region>",
        "--temp_location=gs://<bucket>/beam-tmp",
        "--sdk_container_image=<registry>/sparse-ae-tfx:<tag>",
        "--experiments=use_runner_v2",
        "--max_num_workers=<n>",
    ],
    "flink": [
        "--runner=FlinkRunner",
        "--flink_master=<host>:8081",
        "--environment_type=DOCKER",
        "--environment_config=<registry>/sparse-ae-tfx:<tag>",
        "--parallelism=<n>",
    ],
    "spark": [
        "--runner=SparkRunner",
        "--spark_master_url=spark://<host>:7077",
        "--environment_type=DOCKER",
        "--environment_config=<registry>/sparse-ae-tfx:<tag>",
    ],
}


class AirflowConfig(StrictModel):
    """How the Airflow DAG built from the pipeline is scheduled."""

    schedule: str | None = Field(
        "@daily", description="Cron expression or preset (@daily, ...); none: manual runs only."
    )
    start_date: datetime.date = Field(datetime.date(2026, 1, 1), description="First logical date of the DAG.")
    catchup: bool = Field(False, description="Also run the intervals between start_date and now.")


class PipelineConfig(StrictModel):
    """Everything the pipeline, its runners and its model need."""

    pipeline_name: str = Field("sparse_ae", pattern=r"^[A-Za-z0-9_\-]+$", description="Pipeline name in ML Metadata.")
    pipeline_root: str = Field(
        "pipeline_roots/sparse_ae",
        min_length=1,
        description="Where artifacts are written; keep the metadata store with it.",
    )
    metadata_path: str | None = Field(
        None, description="sqlite ML Metadata file; none: <pipeline_root>/metadata.sqlite."
    )
    serving_dir: str = Field(
        "serving/sparse_ae",
        min_length=1,
        description="Pusher's destination: <serving_dir>/<version>/, TF Serving's layout.",
    )
    dataset: DatasetConfig = DatasetConfig()
    model: SparseAEConfig = Field(
        SparseAEConfig(),
        description="The model's hyperparameters; `sparse-ae train`, `tune` and `reconstruct` take the same keys.",
    )
    steps_per_epoch: int | None = Field(
        None,
        gt=0,
        description="Training steps per epoch (TFX's num_steps = this x model.epochs); none: the whole train split.",
    )
    eval_steps: int | None = Field(None, gt=0, description="Validation steps per epoch; none: the whole eval split.")
    gate: GateConfig = GateConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    scoring: ScoringConfig = ScoringConfig()
    drift: DriftConfig = DriftConfig()
    # Optional Tuner before the Trainer: searches rho, beta and latent_dim (sparse_ae/tuning.py).
    tuner: TunerConfig = Field(
        TunerConfig(),
        description="The optional Tuner (tuner.enabled) and `sparse-ae tune`: search ranges, budget, "
        "sparsity requirement.",
    )
    beam_pipeline_args: list[str] | None = Field(
        None,
        description="Beam options of TFDSExampleGen, StatisticsGen and Evaluator, comma-separated; none: "
        "Beam's local FnApiRunner (the DirectRunner's engine, named so that Beam never swaps in Prism), which a "
        "local run sets in-memory or one process per core as the dataset's size and the cores make pay (a compiled "
        "Kubeflow spec or Airflow DAG: in-memory); without --runner, "
        "--runner=FnApiRunner is added (docs/running-at-scale.md: 'Beam running mode', and templates in 'Beam').",
    )
    container_image: str = Field(
        "sparse-ae-tfx:latest",
        min_length=1,
        description="Image every Kubeflow/Vertex step runs in (built from the Dockerfile), "
        "e.g. gcr.io/<project>/sparse-ae-tfx:1",
    )
    airflow: AirflowConfig = AirflowConfig()
    enable_cache: bool = Field(
        True, description="Reuse outputs of components whose inputs and parameters are unchanged."
    )

    @pydantic.field_validator("beam_pipeline_args", mode="before")
    @classmethod
    def _one_arg_is_a_list(cls, value):
        """Let `--set beam_pipeline_args=--runner=DirectRunner` (one argument) mean a list of one."""
        if isinstance(value, str) and value.strip().lower() in ("", "none", "auto"):
            return None
        return [value] if isinstance(value, str) else value

    @pydantic.model_validator(mode="after")
    def _no_conflicts(self) -> PipelineConfig:
        """Settings that are valid alone but not together."""

        def where(path: str) -> str:
            return path.rstrip("/") if "://" in path else os.path.abspath(path)

        if where(self.serving_dir) == where(self.pipeline_root):
            raise ValueError(
                f"serving_dir={self.serving_dir!r} and pipeline_root={self.pipeline_root!r} conflict: one folder would "
                f"hold the served versions and the pipeline's artifacts and metadata (allowed: two different folders)"
            )
        return self

    @property
    def resolved_metadata_path(self) -> str:
        return self.metadata_path or os.path.join(self.pipeline_root, METADATA_FILE)

    def absolute(self) -> PipelineConfig:
        """The same config with its paths made absolute (components run in other working dirs)."""

        def absolute(path: str | None) -> str | None:
            # URIs (gs://, s3://, hdfs://) are already absolute and must stay as they are.
            return os.path.abspath(path) if path and "://" not in path else path

        dataset = self.dataset.model_copy(update={"data_dir": absolute(self.dataset.data_dir)})
        return self.model_copy(
            update={
                "pipeline_root": absolute(self.pipeline_root),
                "metadata_path": absolute(self.metadata_path),
                "serving_dir": absolute(self.serving_dir),
                "dataset": dataset,
            }
        )


def load_config(overrides: Iterable[str] = (), base: dict | None = None) -> PipelineConfig:
    """Defaults, then base values, then --set key=value overrides; validated (ConfigError if not)."""
    return build_config(PipelineConfig, merge(dict(base or {}), parse_overrides(overrides)))


def config_keys(model: type[StrictModel] = PipelineConfig, prefix: str = "") -> list[str]:
    """Every dotted key that --set accepts."""
    keys = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, StrictModel):
            keys += config_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys
