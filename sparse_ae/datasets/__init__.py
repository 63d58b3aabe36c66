"""TFDS builders of this project; importing the package registers them with TFDS."""

from sparse_ae.datasets import garment_shapes  # noqa: F401
