"""Sparse autoencoder for images: model, data, training and inference, with no TFX dependency."""

import os

# TF 2.16's tf.keras is Keras 3; TFX 1.16 and TFMA 0.47 need Keras 2 (tf_keras). Takes effect
# only when set before TensorFlow is first imported. The one place it is set in Python: every entry
# point (the sparse-ae command, pipeline/, components/, benchmarks/, pipeline_config.py, the tests'
# conftest) imports this package before TensorFlow. The Docker image sets it too (ENV), since TFX's
# container entrypoint imports TensorFlow before any of our code.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
