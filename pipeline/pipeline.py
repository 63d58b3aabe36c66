"""One orchestrator-agnostic pipeline: TFDS ExampleGen -> statistics, schema, validation ->
Trainer -> PSNR-gated Evaluator (against the latest blessed model) -> Pusher."""

from __future__ import annotations

from ml_metadata.proto import metadata_store_pb2

# TFX's internal modules, not `tfx.v1`: that public facade also imports the Google Cloud AI
# Platform extension (google.cloud.aiplatform), about a third of the import time of a run. Each
# component's own module, not `tfx.components`, whose __init__ imports every component (deferred:
# components/deferred_imports.py).
from tfx.components.evaluator.component import Evaluator
from tfx.components.schema_gen.component import SchemaGen
from tfx.components.statistics_gen.component import StatisticsGen
from tfx.components.trainer.component import Trainer
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import bulk_inferrer_pb2, pusher_pb2, trainer_pb2
from tfx.types import Channel, standard_artifacts

from components.drift_validator import DriftValidator
from components.live_model_strategy import LiveModelStatisticsStrategy, LiveModelStrategy
from components.serving_pusher import ServingPusher
from components.strict_example_validator import StrictExampleValidator, not_constant
from components.tfds_example_gen import TFDSExampleGen
from pipeline.beam_args import beam_mode, beam_pipeline_args
from pipeline.evaluation import EVALUATOR_MODULE, eval_config
from pipeline_config import PipelineConfig
from sparse_ae.data import IMAGE_KEY

TRAINER_RUN_FN = "pipeline.trainer_module.run_fn"
RESOLVER_ID = "latest_blessed_model_resolver"
DRIFT_RESOLVER_ID = "live_model_statistics_resolver"


def _bulk_inferrer() -> type:
    """TFX's BulkInferrer, imported only for a pipeline that uses it (about 1.7 s of a run's imports:
    its executor pulls in TensorFlow Serving's APIs and tfx_bsl's RunInference)."""
    from tfx.components.bulk_inferrer.component import BulkInferrer

    return BulkInferrer


def drift_check(config: PipelineConfig, statistics_gen, schema_gen) -> list:
    """[the Resolver of the live model's training statistics, the DriftValidator]."""
    resolver = Resolver(
        strategy_class=LiveModelStatisticsStrategy,
        config={"serving_dir": config.serving_dir},
        model=Channel(type=standard_artifacts.Model),
        statistics=Channel(type=standard_artifacts.ExampleStatistics),
    ).with_id(DRIFT_RESOLVER_ID)
    validator = DriftValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        baseline_statistics=resolver.outputs["statistics"],
        features=config.drift.features,
        threshold=config.drift.threshold,
    )
    return [resolver, validator]


def create_pipeline(
    config: PipelineConfig, metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None
) -> tfx_pipeline.Pipeline:
    """The pipeline for config; runners add only where it runs (and their metadata store)."""
    config = config.absolute()
    dataset = config.dataset
    beam = beam_mode(config)  # set, or chosen for the dataset's size and this machine's cores
    # ExampleGen checks every record against the data contract (components/tfds_example_gen/checks.py).
    example_gen = TFDSExampleGen(
        dataset=dataset.name,
        version=dataset.version,
        data_dir=dataset.data_dir,
        split_mapping=dataset.split_mapping,
        download=dataset.download,
        image_shape=config.model.image_shape,
        beam_mode=beam.describe(),
    )
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    # Anomalies fail the run here, before training (the Trainer and the Tuner wait for it).
    example_validator = StrictExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        custom_validation_config=not_constant(IMAGE_KEY, "every pixel of the split has one value: blank images"),
    ).with_id("ExampleValidator")

    # Drift (issue 16): this run's train statistics against those of the live model's data; with
    # drift.threshold set it fails before training (the Trainer and the Tuner wait for it).
    drift_nodes = drift_check(config, statistics_gen, schema_gen) if config.drift.enabled else []

    epochs = config.model.epochs
    # Optional Tuner (issue 8): its best rho, beta and latent size reach run_fn as fn_args.hyperparameters.
    tuner = None
    if config.tuner.enabled:
        from pipeline.tuner_module import create_tuner  # keras-tuner only when tuning

        tuner = create_tuner(config, example_gen.outputs["examples"], schema_gen.outputs["schema"])
    trainer = Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(splits=["train"], num_steps=(config.steps_per_epoch or 0) * epochs),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"], num_steps=config.eval_steps or 0),
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        custom_config={
            "model": config.model.model_dump(mode="json"),
            "dataset": dataset.name,
            "anomaly_quantile": config.scoring.anomaly_quantile,
        },
    )
    for node in (trainer, tuner) if tuner else (trainer,):
        node.add_upstream_node(example_validator)
        for check in drift_nodes[-1:]:
            node.add_upstream_node(check)

    # The baseline is the model actually live (after manual promotions and rollbacks, see
    # components/live_model_strategy.py), or TFX's built-in latest blessed model.
    live = config.gate.baseline == "live"
    baseline_resolver = Resolver(
        strategy_class=LiveModelStrategy if live else LatestBlessedModelStrategy,
        config={"serving_dir": config.serving_dir} if live else None,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    ).with_id(RESOLVER_ID)
    # evaluation.engine=batched: TFMA with this project's extractors and metrics on whole batches.
    engine = config.evaluation.engine
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
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

    # Optional (issue 16): score a split with the model just blessed; the run summary counts the
    # images above that model's calibrated threshold.
    bulk_inferrer = (
        _bulk_inferrer()(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            data_spec=bulk_inferrer_pb2.DataSpec(example_splits=[config.scoring.bulk_inference_split]),
            model_spec=bulk_inferrer_pb2.ModelSpec(model_signature_name=["serving_default"]),
        )
        if config.scoring.bulk_inference
        else None
    )

    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            *drift_nodes,
            trainer,
            baseline_resolver,
            evaluator,
            pusher,
        ]
        + ([tuner] if tuner else [])
        + ([bulk_inferrer] if bulk_inferrer else []),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        # TFX annotates it list[str | Placeholder], which (list being invariant) refuses a list[str].
        beam_pipeline_args=beam_pipeline_args(config, beam),  # type: ignore[arg-type]
    )
