"""AutoGraph leaves Keras 2's own code unconverted, as it did when Keras came with TensorFlow.

AutoGraph's do-not-convert list names `keras` (TensorFlow's bundled Keras) but not `tf_keras`,
the standalone Keras 2 package TFX needs. Without this rule every `tf.function` trace rewrites
Keras's internals through AutoGraph: a plain Keras model's first `fit` took about ten times as long
(benchmarks/train_step.py's warm-up; docs/benchmarks.md). Layers and models written
here (sparse_ae/) are still converted, so their Python control flow keeps working.

The list is private TensorFlow API (no public setter), so the rule is applied only on the
TensorFlow and tf_keras versions it was tested with; elsewhere it is skipped with a warning
(training is then slower, never wrong). Applied by `sparse_ae.process.setup()`, never on import.
"""

from __future__ import annotations

import importlib.metadata
import warnings

KERAS_2_PACKAGE = "tf_keras"
# major.minor of the versions this rule was tested with (constraints.txt; tests/test_imports.py).
TESTED_VERSIONS = {"tensorflow": "2.16", "tf_keras": "2.16"}


def untested_versions(installed: dict[str, str]) -> list[str]:
    """'package version' for each installed version outside TESTED_VERSIONS."""
    return [
        f"{package} {version}"
        for package, version in installed.items()
        if version.split(".")[:2] != TESTED_VERSIONS[package].split(".")
    ]


def installed_versions() -> dict[str, str]:
    """The versions of TensorFlow (the module's own, whatever distribution installed it) and tf_keras."""
    import tensorflow as tf

    return {"tensorflow": tf.version.VERSION, KERAS_2_PACKAGE: importlib.metadata.version(KERAS_2_PACKAGE)}


def leave_keras_unconverted() -> bool:
    """Put tf_keras on AutoGraph's do-not-convert list (idempotent); False, with a warning, where
    TensorFlow or tf_keras is not a tested version."""
    untested = untested_versions(installed_versions())
    if untested:
        warnings.warn(
            f"AutoGraph rule for {KERAS_2_PACKAGE} skipped: {', '.join(untested)} untested (tested: "
            f"{TESTED_VERSIONS}, sparse_ae/autograph_rules.py); the first fit of a model traces more slowly",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    from tensorflow.python.autograph.core import config  # private: guarded by the version check above

    rules = config.CONVERSION_RULES
    if not any(isinstance(rule, config.DoNotConvert) and rule.matches(KERAS_2_PACKAGE) for rule in rules):
        config.CONVERSION_RULES = (config.DoNotConvert(KERAS_2_PACKAGE), *rules)
    return True
