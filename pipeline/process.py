"""Process-wide settings of a program that runs TFX with this project, made explicitly.

Importing `sparse_ae`, `components` or `pipeline` changes nothing in other libraries; each entry
point calls `setup()` once, before TensorFlow is imported: the `sparse-ae` command, the Trainer's
`run_fn` and the Tuner's `tuner_fn`, the Airflow DAG file, the notebook's first cell, the benchmarks
and the tests' conftest.
"""

from __future__ import annotations

import os
import sys
import warnings

from sparse_ae import process as library_process

KERAS_2_SWITCH = "TF_USE_LEGACY_KERAS"
_ON = ("1", "true", "True")  # what TensorFlow reads as on (tensorflow/__init__.py)


def use_keras_2() -> None:
    """Make `tf.keras` Keras 2 (tf_keras), as TFX 1.16 and TFMA 0.47 need (TF 2.16's default is
    Keras 3). TensorFlow reads the switch when it is imported; a value already set is kept (the
    Docker image sets it, since TFX's container entrypoint imports TensorFlow before our code)."""
    if os.environ.get(KERAS_2_SWITCH) in _ON:
        return
    if "tensorflow" in sys.modules and KERAS_2_SWITCH not in os.environ:
        warnings.warn(
            f"TensorFlow was imported before pipeline.process.setup(): set {KERAS_2_SWITCH}=1 before "
            "importing it, or tf.keras may be Keras 3, which TFX and TFMA cannot use",
            RuntimeWarning,
            stacklevel=3,
        )
    os.environ.setdefault(KERAS_2_SWITCH, "1")


def setup() -> None:
    """Keras 2 as tf.keras, then the model library's settings (sparse_ae.process.setup); idempotent."""
    use_keras_2()
    library_process.setup()
