"""Standalone training: fit, checkpoint the best weights, write metrics.json and TensorBoard logs."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import tensorflow as tf
import tf_keras as keras

from sparse_ae import linear_baseline, sparsity
from sparse_ae.config import SparseAEConfig, configure_devices
from sparse_ae.distribute import create_strategy, discard, shard_by_data, writable_dir
from sparse_ae.errors import TrainingDivergedError
from sparse_ae.linear_baseline import LinearBaseline
from sparse_ae.model import METRIC_NAMES, SparseAutoencoder, build_model
from sparse_ae.storage import local_dir, write_text

WEIGHTS_FILE = "sparse_autoencoder.weights.h5"
METRICS_FILE = "metrics.json"
LOGS_DIR = "logs"


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras's TerminateOnNaN (stops at the first NaN or infinite batch loss), remembering where."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.stopped_at: tuple | None = None  # (epoch, step), both counted from 1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if self.stopped_at is None and loss is not None and not math.isfinite(float(loss)):
            self.stopped_at = (self.epoch + 1, batch + 1)
        super().on_batch_end(batch, logs)


def cosine_learning_rate(config: SparseAEConfig):
    """Epoch -> learning rate: half a cosine from config.learning_rate down to 0 at the last epoch."""

    def rate(epoch: int, current: float) -> float:
        return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))

    return rate


def training_callbacks(
    output_dir: str, config: SparseAEConfig, monitor: str = "val_loss", checkpoint_dir: str | None = None
) -> list[keras.callbacks.Callback]:
    """Best-weights checkpoint (weights only, into checkpoint_dir, default output_dir: it must be
    local, as h5py writes only local files), TensorBoard logs (any filesystem), a stop on NaN loss,
    the configured learning-rate schedule, and early stopping that leaves the best epoch's weights
    in the model."""
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoint_dir or output_dir, WEIGHTS_FILE),
            monitor=monitor,
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.TensorBoard(log_dir=os.path.join(output_dir, LOGS_DIR)),
        StopOnNaN(),
        # Without a patience it never stops early, but still restores the best epoch at the end:
        # the model in memory is then the one in the checkpoint (and best_val_* describe it).
        keras.callbacks.EarlyStopping(
            monitor=monitor,
            patience=config.early_stopping_patience or config.epochs,
            restore_best_weights=True,
        ),
    ]
    if config.learning_rate_schedule == "cosine":
        callbacks.append(keras.callbacks.LearningRateScheduler(cosine_learning_rate(config)))
    return callbacks


def summarize_history(history: dict[str, list[float]], config: SparseAEConfig) -> dict[str, Any]:
    """The metrics.json content: best and final validation figures, the config, the per-epoch history."""
    val_loss = history.get("val_loss", [])
    best_epoch = min(range(len(val_loss)), key=val_loss.__getitem__) if val_loss else None

    def final(name: str) -> float | None:
        values = history.get(name)
        return float(values[-1]) if values else None

    return {
        "epochs_run": len(history.get("loss", [])),
        "best_epoch": None if best_epoch is None else best_epoch + 1,
        # The best epoch's validation figures: those of the weights that are kept and shipped.
        **{
            f"best_val_{name}": None if best_epoch is None else float(history[f"val_{name}"][best_epoch])
            for name in METRIC_NAMES
        },
        **{f"final_val_{name}": final(f"val_{name}") for name in METRIC_NAMES},
        "sparsity_target": config.sparsity_target,
        "config": config.model_dump(mode="json"),
        "history": {name: [float(v) for v in values] for name, values in history.items()},
    }


def describe_code(model: SparseAutoencoder, val_data: tf.data.Dataset, baseline: LinearBaseline | None) -> dict:
    """The code's sparsity on the validation split (`code_sparsity`, sparse_ae/sparsity.py) and, with a
    baseline, PCA with as many components as the code has active units per image on average
    (`linear_baseline_at_active`): the linear code of the same size, the figure a sparse code must beat."""
    code = sparsity.measure(model.encode, model.decode, lambda: val_data)
    described: dict[str, Any] = {"code_sparsity": code}
    if baseline is not None:
        active = baseline.truncated(sparsity.active_code_size(code, baseline.code_size))
        scores = linear_baseline.score(active, (targets.numpy() for _, targets in val_data))
        described["linear_baseline_at_active"] = linear_baseline.summary(active, scores)
    return described


def fit(
    model: SparseAutoencoder,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset,
    epochs: int,
    output_dir: str,
    verbose: int | str = "auto",
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    extra_callbacks: list | None = None,
    extra_summary: dict[str, Any] | None = None,
    baseline: LinearBaseline | None = None,
) -> dict[str, Any]:
    """Train with the standard callbacks, write metrics.json (plus extra_summary and the code's
    sparsity on val_data: describe_code), and return its content.

    output_dir may be remote (gs://...): the checkpoint is written to a local folder and copied
    there when training ends; metrics.json and the logs are written there directly.

    Raises TrainingDivergedError when the loss became NaN (after writing metrics.json, so the
    failure is on record).
    """
    # Under MultiWorkerMirroredStrategy only the chief writes into output_dir.
    write_dir = writable_dir(output_dir, model.distribute_strategy)
    tf.io.gfile.makedirs(write_dir)
    with local_dir(write_dir) as checkpoint_dir:  # h5py writes only local files
        callbacks = training_callbacks(write_dir, model.config, checkpoint_dir=checkpoint_dir)
        history = model.fit(
            train_data,
            validation_data=val_data,
            epochs=epochs,
            verbose=verbose,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            callbacks=callbacks + list(extra_callbacks or []),
        )
    summary = {**summarize_history(history.history, model.config), **(extra_summary or {})}
    losses = history.history.get("loss", [])
    stopped_at = next(c.stopped_at for c in callbacks if isinstance(c, StopOnNaN))
    summary["diverged"] = stopped_at is not None or any(not math.isfinite(value) for value in losses)
    summary["diverged_at"] = list(stopped_at) if stopped_at else None
    summary["replicas"] = model.distribute_strategy.num_replicas_in_sync
    if not summary["diverged"]:
        summary.update(describe_code(model, val_data, baseline))
    write_text(os.path.join(write_dir, METRICS_FILE), json.dumps(summary, indent=2, allow_nan=True))
    discard(write_dir, output_dir)
    if summary["diverged"]:
        epoch, step = stopped_at or (len(losses), None)
        where = f"epoch {epoch}, step {step}" if step else f"epoch {epoch}"
        raise TrainingDivergedError(
            f"training diverged: the loss became NaN/inf at {where} and training stopped there; lower "
            f"learning_rate (now {model.config.learning_rate}) or sparsity_weight (now {model.config.sparsity_weight})"
        )
    return summary


def train(
    config: SparseAEConfig,
    dataset: str,
    output_dir: str,
    data_dir: str | None = None,
    train_split: str = "train",
    val_split: str = "test",
    download: bool = True,
    verbose: int | str = "auto",
    with_linear_baseline: bool = True,
) -> dict[str, Any]:
    """Train on a TFDS dataset by name; writes sparse_autoencoder.weights.h5, metrics.json and logs/.

    With with_linear_baseline, metrics.json also holds PCA of latent_dim components fitted on the train
    split and scored on the validation split (`linear_baseline`), and PCA of the code's active size
    (`linear_baseline_at_active`), the figure a sparse code must beat.
    """
    from sparse_ae import data  # local: keeps TFDS out of model-only imports

    configure_devices(config)
    strategy = create_strategy(config)  # before any other TensorFlow op (MWMS needs that)
    train_data = data.tfds_pairs(dataset, train_split, config, training=True, data_dir=data_dir, download=download)
    val_data = data.tfds_pairs(dataset, val_split, config, training=False, data_dir=data_dir, download=download)
    train_data, val_data = shard_by_data(train_data, strategy), shard_by_data(val_data, strategy)
    extra: dict[str, Any] = {"dataset": dataset}
    baseline = None
    if with_linear_baseline:
        baseline, extra["linear_baseline"] = linear_baseline.fit_on_tfds(
            dataset, train_split, val_split, config.latent_dim, data_dir=data_dir, download=download
        )
    keras.utils.set_random_seed(config.seed)  # the initial weights (and dropout-free steps) reproducible
    model = build_model(config, strategy)
    return fit(
        model, train_data, val_data, config.epochs, output_dir, verbose=verbose, extra_summary=extra, baseline=baseline
    )
