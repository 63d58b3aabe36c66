"""tf.distribute strategies from the config, and where each worker may write.

Under MultiWorkerMirroredStrategy every worker runs the same program; only the chief's files
are kept, the others write to a temporary directory they delete (Keras's documented pattern),
so that collective operations inside saving still run on every worker.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import tensorflow as tf

from sparse_ae.config import SparseAEConfig


def create_strategy(config: SparseAEConfig) -> tf.distribute.Strategy:
    """The configured strategy. Create it before any other TensorFlow op runs (MWMS needs that)."""
    if config.distribution_strategy == "mirrored":
        # All local GPUs; without any, all logical CPU devices (one replica each).
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy(None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")])
    if config.distribution_strategy == "multi_worker_mirrored":
        # Cluster and this worker's role come from TF_CONFIG (set by the user, Vertex AI or KFP).
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one worker whose outputs are kept (always true without a cluster)."""
    if not strategy.extended._in_multi_worker_mode():  # noqa: SLF001  (Keras uses the same check)
        return True
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task", {})
    task_type, task_id = task.get("type"), task.get("index", 0)
    if task_type is None or task_type == "chief":
        return True
    # Without an explicit chief in the cluster, worker 0 is the chief (MWMS's convention).
    return task_type == "worker" and task_id == 0 and "chief" not in tf_config.get("cluster", {})


def writable_dir(output_dir: str, strategy: tf.distribute.Strategy) -> str:
    """output_dir on the chief; a fresh temporary directory on every other worker."""
    if is_chief(strategy):
        return output_dir
    # Local by definition: a non-chief's throwaway folder, never an artifact.
    return tempfile.mkdtemp(prefix="sparse_ae_worker_")


def discard(path: str, output_dir: str) -> None:
    """Delete a non-chief's temporary directory (path differs from the real output_dir)."""
    if path != output_dir:
        shutil.rmtree(path, ignore_errors=True)  # local by definition: writable_dir's temporary folder


def shard_by_data(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy) -> tf.data.Dataset:
    """Across workers, shard by element rather than by file: every worker then runs the same number
    of steps (file sharding of one or few files would leave some workers idle or deadlocked)."""
    if not strategy.extended._in_multi_worker_mode():  # noqa: SLF001
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
