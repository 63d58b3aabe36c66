"""KerasTuner search of rho, beta and the latent size under a sparsity requirement (no TFX).

The pipeline's Tuner (`pipeline/tuner_module.py`) and `sparse-ae tune` build the same
`SparsityTuner`; only where the data comes from differs.
"""

from __future__ import annotations

import keras_tuner
import tensorflow as tf
import tf_keras as keras

from sparse_ae.config import SparseAEConfig, configure_devices
from sparse_ae.model import build_model
from sparse_ae.tuning import (
    OBJECTIVE,
    TrialResult,
    TunerConfig,
    apply_hyperparameters,
    rank_trials,
    save_trials,
)


def search_space(tuner_config: TunerConfig) -> keras_tuner.HyperParameters:
    """rho uniform, beta log-uniform, latent size from the choices (min == max: a fixed value)."""
    hp = keras_tuner.HyperParameters()
    for name, (low, high), sampling in (
        ("sparsity_target", tuner_config.sparsity_target_range, "linear"),
        ("sparsity_weight", tuner_config.sparsity_weight_range, "log"),
    ):
        if low == high:
            hp.Fixed(name, low)
        else:
            hp.Float(name, low, high, sampling=sampling)
    hp.Choice("latent_dim", list(tuner_config.latent_dims), ordered=True)
    return hp


class SparsityTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """Trains one `SparseAutoencoder` per trial and scores it by `objective_score`.

    BaseTuner rather than keras_tuner.Tuner: the latter drives Keras 3 models and callbacks,
    while this model is tf_keras (Keras 2, which TFX needs); run_trial trains it directly.
    """

    def __init__(
        self,
        base_config: SparseAEConfig,
        tuner_config: TunerConfig,
        directory: str,
        project_name: str = "sparse_ae",
    ):
        oracle = keras_tuner.oracles.RandomSearchOracle(
            objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
            max_trials=tuner_config.max_trials,
            seed=tuner_config.seed,
            hyperparameters=search_space(tuner_config),
        )
        # A rerun starts a fresh search rather than silently reloading a finished one.
        super().__init__(oracle, directory=directory, project_name=project_name, overwrite=True)
        self.oracle.verbose = 0  # progress is our one line per trial plus Keras's epoch lines
        self.base_config = base_config
        self.tuner_config = tuner_config

    def run_trial(
        self,
        trial,
        train_data: tf.data.Dataset,
        val_data: tf.data.Dataset,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        fit_verbose: int = 2,
    ) -> dict[str, float]:
        """Train one model with the trial's values; its validation figures and objective."""
        # fit_verbose, not verbose: BaseTuner.search would turn KerasTuner's own display on.
        values = trial.hyperparameters.values
        config = apply_hyperparameters(self.base_config, values).model_copy(
            update={"epochs": self.tuner_config.epochs_per_trial}
        )
        number = len(self.oracle.trials)
        print(
            f"[tuner] trial {trial.trial_id} ({number} of {self.tuner_config.max_trials}): "
            f"sparsity_target={config.sparsity_target:.4f} sparsity_weight={config.sparsity_weight:.3g} "
            f"latent_dim={config.latent_dim}",
            flush=True,
        )
        keras.backend.clear_session()  # each trial's graph would otherwise stay in memory
        keras.utils.set_random_seed(config.seed)  # every trial starts from the same seeded weights
        model = build_model(config)
        history = model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.epochs,
            verbose=fit_verbose,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
        ).history
        # The last epoch: the Trainer trains on from scratch with these values, longer.
        metrics = {name: float(history[name][-1]) for name in ("val_psnr", "val_mean_activation", "val_kl_penalty")}
        result = TrialResult.from_metrics(trial.trial_id, values, metrics, self.tuner_config.sparsity_tolerance)
        print(
            f"[tuner] trial {trial.trial_id} done: PSNR {result.psnr:.2f} dB, "
            f"mean activation {result.mean_activation:.4f} "
            f"({'meets' if result.meets_sparsity else 'misses'} sparsity_target "
            f"within {self.tuner_config.sparsity_tolerance:g}), "
            f"KL {result.kl_penalty:.4f}, objective {result.score:.2f}",
            flush=True,
        )
        return {OBJECTIVE: result.score, **metrics}

    def trial_results(self) -> list[TrialResult]:
        """Every completed trial, ranked by the objective."""
        results = []
        for trial in self.oracle.trials.values():
            if trial.status != keras_tuner.engine.trial.TrialStatus.COMPLETED:
                continue
            metrics = {
                name: trial.metrics.get_last_value(name)
                for name in ("val_psnr", "val_mean_activation", "val_kl_penalty")
            }
            results.append(
                TrialResult.from_metrics(
                    trial.trial_id,
                    trial.hyperparameters.values,
                    metrics,
                    self.tuner_config.sparsity_tolerance,
                )
            )
        return rank_trials(results)


def search(
    base_config: SparseAEConfig,
    tuner_config: TunerConfig,
    dataset: str,
    output_dir: str,
    data_dir: str | None = None,
    download: bool = True,
    verbose: int = 2,
    train_split: str = "train",
    val_split: str = "test",
) -> list[TrialResult]:
    """Standalone search on a TFDS dataset (fit on train_split, scored on val_split); writes trials.json;
    returns the ranked trials."""
    from sparse_ae import data

    configure_devices(base_config)
    train = data.tfds_pairs(dataset, train_split, base_config, training=True, data_dir=data_dir, download=download)
    val = data.tfds_pairs(dataset, val_split, base_config, training=False, data_dir=data_dir, download=download)
    if tuner_config.steps_per_epoch:
        train = train.repeat()
    tf.io.gfile.makedirs(output_dir)  # output_dir may be remote (gs://)
    tuner = SparsityTuner(base_config, tuner_config, directory=output_dir)
    tuner.search(
        train,
        val,
        steps_per_epoch=tuner_config.steps_per_epoch,
        validation_steps=tuner_config.eval_steps,
        fit_verbose=verbose,
    )
    trials = tuner.trial_results()
    save_trials(trials, output_dir, tuner_config.sparsity_tolerance)
    return trials
