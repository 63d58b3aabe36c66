"""Sparse autoencoder for images: model, data, training and inference, with no TFX dependency.

Importing it changes nothing outside the package; programs call `sparse_ae.process.setup()`
(or, with TFX, `pipeline.process.setup()`) once, early.
"""
