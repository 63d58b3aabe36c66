"""The pipeline's optional Tuner: `tuner_fn` (the same `SparsityTuner` as `sparse-ae tune`, fed by
TFXIO like the Trainer) and a Tuner component whose executor also records the trials table."""

from __future__ import annotations

import os
from typing import Any

from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner import executor as tuner_executor
from tfx.components.tuner.component import Tuner, TunerFnResult
from tfx.dsl.components.base import executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from pipeline import process
from pipeline.node_ids import TUNER
from pipeline.trainer_module import input_pairs, split_images
from sparse_ae.config import SparseAEConfig, configure_devices
from sparse_ae.tuner import SparsityTuner
from sparse_ae.tuning import TRIALS_FILE, TunerConfig, trials_json

TUNER_FN = "pipeline.tuner_module.tuner_fn"


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    """The search over the Examples' train split, validated on eval, in the executor's working dir."""
    process.setup()  # an entry point: a Kubeflow container imports this module first
    model_config = SparseAEConfig.model_validate(fn_args.custom_config["model"])
    tuner_config = TunerConfig.model_validate(fn_args.custom_config["tuner"])
    configure_devices(model_config)
    # Batching, shuffling and corruption are not tuned, so one input pipeline serves every trial.
    train, val, steps_per_epoch = input_pairs(
        split_images(fn_args, model_config), fn_args, model_config, tuner_config.epochs_per_trial
    )
    tuner = SparsityTuner(model_config, tuner_config, directory=fn_args.working_dir)
    return TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "train_data": train,
            "val_data": val,
            "steps_per_epoch": steps_per_epoch,
            "validation_steps": fn_args.eval_steps or None,
        },
    )


class SparsityTunerExecutor(tuner_executor.Executor):
    """TFX's Tuner executor, plus trials.json (each trial's rho, beta, latent size, PSNR, mean
    activation, KL and score) in the tuner_results artifact, for the run summary."""

    def Do(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        if tuner_executor.get_tune_args(exec_properties):
            raise ValueError("TuneArgs is not supported by this Tuner's Executor.")
        tuner = tuner_executor.search(input_dict, exec_properties, self._get_tmp_dir(), print_tuning_summary=False)
        if not tuner.oracle.get_best_trials(1):  # otherwise TFX fails with a bare IndexError
            raise RuntimeError("no tuner trial completed; see the trial errors above")
        tuner_executor.write_best_hyperparameters(tuner, output_dict)
        results_uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.TUNER_RESULTS_KEY])
        io_utils.write_string_file(
            os.path.join(results_uri, TRIALS_FILE),
            trials_json(tuner.trial_results(), tuner.tuner_config.sparsity_tolerance),
        )


class SparsityTunerComponent(Tuner):
    """`tfx.components.Tuner` with SparsityTunerExecutor."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(SparsityTunerExecutor)


def create_tuner(config, examples, schema) -> Tuner:
    """The Tuner node for a PipelineConfig with tuner.enabled; its outputs feed the Trainer."""
    tuner = config.tuner
    return SparsityTunerComponent(
        tuner_fn=TUNER_FN,
        examples=examples,
        schema=schema,
        train_args=trainer_pb2.TrainArgs(
            splits=["train"], num_steps=(tuner.steps_per_epoch or 0) * tuner.epochs_per_trial
        ),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"], num_steps=tuner.eval_steps or 0),
        custom_config={"model": config.model.model_dump(mode="json"), "tuner": tuner.model_dump(mode="json")},
    ).with_id(TUNER)
