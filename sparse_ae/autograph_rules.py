"""AutoGraph leaves Keras 2's own code unconverted, as it did when Keras came with TensorFlow.

AutoGraph's do-not-convert list names `keras` (TensorFlow's bundled Keras) but not `tf_keras`,
the standalone Keras 2 package TFX needs. Without this rule every `tf.function` trace rewrites
Keras's internals through AutoGraph: on this project's 2-core machines a plain Keras model's first
`fit` took 39 s instead of 4 s (benchmarks/train_step.py's warm-up). Layers and models written
here (sparse_ae/) are still converted, so their Python control flow keeps working.
"""

from __future__ import annotations

# AutoGraph's rules have no public setter; the list is read on every conversion decision.
from tensorflow.python.autograph.core import config as _autograph_config

KERAS_2_PACKAGE = "tf_keras"


def leave_keras_unconverted() -> None:
    """Put tf_keras on AutoGraph's do-not-convert list (idempotent)."""
    rules = _autograph_config.CONVERSION_RULES
    if not any(isinstance(rule, _autograph_config.DoNotConvert) and rule.matches(KERAS_2_PACKAGE) for rule in rules):
        _autograph_config.CONVERSION_RULES = (_autograph_config.DoNotConvert(KERAS_2_PACKAGE), *rules)
