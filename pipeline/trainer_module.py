"""The Trainer's run_fn: the same model, train_step and fit as standalone training, fed by TFXIO."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.utils import io_utils
from tfx_bsl.public import tfxio

from pipeline import process
from sparse_ae import linear_baseline
from sparse_ae.calibration import DEFAULT_QUANTILE, calibrate, model_mse, write_calibration
from sparse_ae.config import SparseAEConfig, configure_devices
from sparse_ae.data import IMAGE_KEY, to_pairs
from sparse_ae.distribute import create_strategy, discard, shard_by_data, writable_dir
from sparse_ae.export import export_saved_model
from sparse_ae.model import build_model
from sparse_ae.train import fit
from sparse_ae.tuning import apply_hyperparameters

# TFXIO reads batches of this size; they are split into images again before shuffling.
_READ_BATCH = 1024


def _images(file_pattern, data_accessor, schema, config: SparseAEConfig) -> tf.data.Dataset:
    """uint8 images of one split, decoded once and cached in memory (55 MB for 70,000)."""
    batches = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=_READ_BATCH, num_epochs=1, shuffle=False),
        schema,
    )
    shape = (-1, *config.image_shape)
    return (
        batches.map(
            lambda features: tf.reshape(tf.cast(features[IMAGE_KEY], tf.uint8), shape),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .unbatch()
        .cache()
    )


def split_images(fn_args: FnArgs, config: SparseAEConfig) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """(train, eval) uint8 images from the Examples through TFXIO, each cached after its first pass."""
    schema = io_utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())
    return (
        _images(fn_args.train_files, fn_args.data_accessor, schema, config),
        _images(fn_args.eval_files, fn_args.data_accessor, schema, config),
    )


def input_pairs(images: tuple[tf.data.Dataset, tf.data.Dataset], fn_args: FnArgs, config: SparseAEConfig, epochs: int):
    """(train, val, steps_per_epoch) from split_images, for the Trainer and the Tuner.

    TFX counts total steps and Keras steps per epoch; with a step limit the train split repeats.
    """
    train = to_pairs(images[0], config, training=True)
    val = to_pairs(images[1], config, training=False)
    steps_per_epoch = fn_args.train_steps // epochs if fn_args.train_steps else None
    return (train.repeat() if steps_per_epoch else train), val, steps_per_epoch


def fit_linear_baseline(images: tuple[tf.data.Dataset, tf.data.Dataset], config: SparseAEConfig):
    """PCA of latent_dim components on the train images, scored on the eval images: (baseline, summary).

    Its first pass fills the image caches that training then reads.
    """

    def batches(split: tf.data.Dataset):
        return split.batch(_READ_BATCH * 4).as_numpy_iterator()

    return linear_baseline.fit_and_score(batches(images[0]), batches(images[1]), config.latent_dim)


def run_fn(fn_args: FnArgs) -> None:
    """Train on the train split, validate on eval, export the best epoch's weights as a SavedModel
    that also scores the linear baseline (PCA of the same code size) per example."""
    process.setup()  # an entry point: a Kubeflow container imports this module first
    config = SparseAEConfig.model_validate(fn_args.custom_config["model"])
    if fn_args.hyperparameters:  # the Tuner's best values (a KerasTuner HyperParameters config)
        config = apply_hyperparameters(config, fn_args.hyperparameters.get("values", {}))
    configure_devices(config)
    # MultiWorkerMirroredStrategy reads the cluster from TF_CONFIG, which Vertex AI and KFP set.
    strategy = create_strategy(config)
    images = split_images(fn_args, config)
    baseline, baseline_summary = fit_linear_baseline(images, config)
    print(
        f"Linear baseline: PCA-{baseline.code_size} eval PSNR {baseline_summary['eval_psnr']:.2f} dB",
        flush=True,
    )
    train, eval_pairs, steps_per_epoch = input_pairs(images, fn_args, config, config.epochs)
    train, val = shard_by_data(train, strategy), shard_by_data(eval_pairs, strategy)
    keras.utils.set_random_seed(config.seed)  # reproducible initial weights
    model = build_model(config, strategy)
    summary = fit(
        model,
        train,
        val,
        config.epochs,
        fn_args.model_run_dir,
        verbose=2,
        steps_per_epoch=steps_per_epoch,
        validation_steps=fn_args.eval_steps,
        extra_summary={
            "dataset": fn_args.custom_config.get("dataset", ""),
            "linear_baseline": baseline_summary,
        },
        baseline=baseline,
    )
    # fit leaves the best epoch's weights (by val_loss) in the model: that is the model we ship.
    # Only the chief keeps it; other workers export to a temporary directory they delete.
    export_dir = writable_dir(fn_args.serving_model_dir, strategy)
    export_saved_model(model, export_dir, baseline, summary["code_sparsity"])
    if export_dir == fn_args.serving_model_dir:
        write_model_calibration(model, eval_pairs, export_dir, fn_args.custom_config)
    discard(export_dir, fn_args.serving_model_dir)


def write_model_calibration(model, eval_pairs, export_dir: str, custom_config: dict) -> None:
    """Store the exported model's per-image MSE quantiles on the whole eval split in its folder.

    Computed here, not in a step after the Evaluator: the Trainer already holds the eval split
    decoded in memory and the best epoch's weights, and a file written into the SavedModel folder
    follows the model through the Pusher, promotions and rollbacks with no extra component,
    artifact or lookup. The ServingPusher copies the figures into ML Metadata.
    """
    calibration = calibrate(
        model_mse(model, eval_pairs),
        custom_config.get("anomaly_quantile", DEFAULT_QUANTILE),
        split="eval",
        dataset=custom_config.get("dataset", ""),
        image_shape=model.config.image_shape,
    )
    write_calibration(export_dir, calibration)
