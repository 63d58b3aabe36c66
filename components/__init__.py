"""TFX components and executors of this project (TFDS ExampleGen, ...)."""
