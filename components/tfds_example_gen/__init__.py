"""ExampleGen for TensorFlow Datasets: TFDS splits -> gzipped tf.Example TFRecords (TFX has none)."""

from components.tfds_example_gen.component import TFDSExampleGen

__all__ = ["TFDSExampleGen"]
