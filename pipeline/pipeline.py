"""One orchestrator-agnostic pipeline: TFDS ExampleGen -> statistics, schema, validation ->
Trainer -> PSNR-gated Evaluator (against the latest blessed model) -> Pusher."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ml_metadata.proto import metadata_store_pb2

# TFX's internal modules, not `tfx.v1`: that public facade also imports the Google Cloud AI
# Platform extension (google.cloud.aiplatform), about a third of the import time of a run.
from tfx.components.bulk_inferrer.component import BulkInferrer
from tfx.components.evaluator.component import Evaluator
from tfx.components.schema_gen.component import SchemaGen
from tfx.components.statistics_gen.component import StatisticsGen
from tfx.components.trainer.component import Trainer
from tfx.dsl.components.base.base_component import BaseComponent
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.dsl.placeholder.placeholder import Placeholder
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import bulk_inferrer_pb2, pusher_pb2, trainer_pb2
from tfx.types import Channel, standard_artifacts

from components.drift_validator import DriftValidator
from components.live_model_strategy import LiveModelStatisticsStrategy, LiveModelStrategy
from components.serving_pusher import ServingPusher
from components.strict_example_validator import StrictExampleValidator, not_constant
from components.tfds_example_gen import TFDSExampleGen
from pipeline.beam_args import beam_pipeline_args
from pipeline.evaluation import EVALUATOR_MODULE, eval_config
from pipeline.node_ids import BASELINE_RESOLVER, DRIFT_RESOLVER, EXAMPLE_VALIDATOR
from pipeline_config import PipelineConfig
from sparse_ae.data import IMAGE_KEY

TRAINER_RUN_FN = "pipeline.trainer_module.run_fn"


def drift_check(config: PipelineConfig, statistics_gen, schema_gen) -> list:
    """[the Resolver of the live model's training statistics, the DriftValidator]."""
    resolver = Resolver(
        strategy_class=LiveModelStatisticsStrategy,
        config={"serving_dir": config.serving_dir},
        model=Channel(type=standard_artifacts.Model),
        statistics=Channel(type=standard_artifacts.ExampleStatistics),
    ).with_id(DRIFT_RESOLVER)
    validator = DriftValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        baseline_statistics=resolver.outputs["statistics"],
        features=config.drift.features,
        threshold=config.drift.threshold,
    )
    return [resolver, validator]


@dataclasses.dataclass(frozen=True)
class DataStage:
    """The examples, their statistics and schema, and the checks training waits for."""

    example_gen: TFDSExampleGen
    statistics_gen: StatisticsGen
    schema_gen: SchemaGen
    example_validator: StrictExampleValidator
    drift: list  # [its Resolver, the DriftValidator] with drift.enabled, else []

    @property
    def nodes(self) -> list:
        return [self.example_gen, self.statistics_gen, self.schema_gen, self.example_validator, *self.drift]

    @property
    def checks(self) -> list:
        """The nodes that fail a run before training: anomalies, and drift over its threshold."""
        return [self.example_validator, *self.drift[-1:]]


def data_stage(config: PipelineConfig) -> DataStage:
    """ExampleGen (checks every record against the data contract, components/tfds_example_gen/checks.py),
    StatisticsGen, SchemaGen, the ExampleValidator and the optional drift check."""
    dataset = config.dataset
    example_gen = TFDSExampleGen(
        dataset=dataset.name,
        version=dataset.version,
        data_dir=dataset.data_dir,
        split_mapping=dataset.split_mapping,
        download=dataset.download,
        image_shape=config.model.image_shape,
    )
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    # Anomalies fail the run here, before training.
    example_validator = StrictExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        custom_validation_config=not_constant(IMAGE_KEY, "every pixel of the split has one value: blank images"),
    ).with_id(EXAMPLE_VALIDATOR)
    # Drift (issue 16): this run's train statistics against those of the live model's data; with
    # drift.threshold set it fails before training.
    drift = drift_check(config, statistics_gen, schema_gen) if config.drift.enabled else []
    return DataStage(example_gen, statistics_gen, schema_gen, example_validator, drift)


def training_stage(config: PipelineConfig, data: DataStage) -> tuple[Trainer, BaseComponent | None]:
    """The Trainer, and the optional Tuner (issue 8) whose best rho, beta and latent size reach
    run_fn as fn_args.hyperparameters; both wait for the data checks."""
    examples, schema = data.example_gen.outputs["examples"], data.schema_gen.outputs["schema"]
    tuner = None
    if config.tuner.enabled:
        from pipeline.tuner_module import create_tuner

        tuner = create_tuner(config, examples, schema)
    trainer = Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=examples,
        schema=schema,
        train_args=trainer_pb2.TrainArgs(
            splits=["train"], num_steps=(config.steps_per_epoch or 0) * config.model.epochs
        ),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"], num_steps=config.eval_steps or 0),
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        custom_config={
            "model": config.model.model_dump(mode="json"),
            "dataset": config.dataset.name,
            "anomaly_quantile": config.scoring.anomaly_quantile,
        },
    )
    for node in (trainer, tuner) if tuner else (trainer,):
        for check in data.checks:
            node.add_upstream_node(check)
    return trainer, tuner


def gate_and_push(
    config: PipelineConfig, data: DataStage, trainer: Trainer
) -> tuple[Resolver, Evaluator, ServingPusher]:
    """The baseline Resolver, the PSNR-gated Evaluator and the ServingPusher. The baseline is the
    model actually live (after manual promotions and rollbacks, components/live_model_strategy.py),
    or TFX's built-in latest blessed model."""
    live = config.gate.baseline == "live"
    baseline_resolver = Resolver(
        strategy_class=LiveModelStrategy if live else LatestBlessedModelStrategy,
        config={"serving_dir": config.serving_dir} if live else None,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    ).with_id(BASELINE_RESOLVER)
    # evaluation.engine=batched: TFMA with this project's extractors and metrics on whole batches.
    engine = config.evaluation.engine
    evaluator = Evaluator(
        examples=data.example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=eval_config(config.gate, engine),
        example_splits=["eval"],
        module_path=EVALUATOR_MODULE if engine == "batched" else None,
    )
    pusher = ServingPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.serving_dir)
        ),
    )
    return baseline_resolver, evaluator, pusher


def bulk_inference(config: PipelineConfig, data: DataStage, trainer: Trainer, evaluator: Evaluator) -> list:
    """With scoring.bulk_inference (issue 16), the BulkInferrer scoring a split with the model just
    blessed (the run summary counts the images above its calibrated threshold); else []."""
    if not config.scoring.bulk_inference:
        return []
    return [
        BulkInferrer(
            examples=data.example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            data_spec=bulk_inferrer_pb2.DataSpec(example_splits=[config.scoring.bulk_inference_split]),
            model_spec=bulk_inferrer_pb2.ModelSpec(model_signature_name=["serving_default"]),
        )
    ]


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    beam_args: Sequence[str | Placeholder] | None = None,
) -> tfx_pipeline.Pipeline:
    """The pipeline for config; runners add only where it runs (their metadata store, and the local
    runner its Beam options, pipeline/beam_args.py). Nothing here reads the machine it is built on:
    a compiled spec or DAG is the same wherever it is compiled."""
    config = config.absolute()
    data = data_stage(config)
    trainer, tuner = training_stage(config, data)
    baseline_resolver, evaluator, pusher = gate_and_push(config, data, trainer)
    optional = ([tuner] if tuner else []) + bulk_inference(config, data, trainer, evaluator)
    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[*data.nodes, trainer, baseline_resolver, evaluator, pusher, *optional],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args(config) if beam_args is None else beam_args),
    )
