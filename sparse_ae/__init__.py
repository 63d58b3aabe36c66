"""Sparse autoencoder for images: model, data, training and inference, with no TFX dependency."""
import os

# TF 2.16's tf.keras is Keras 3; TFX 1.16 and TFMA 0.47 need Keras 2 (tf_keras). Takes effect
# only when set before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
