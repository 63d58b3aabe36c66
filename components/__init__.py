"""TFX components and executors of this project (TFDS ExampleGen, ...)."""
from components.deferred_imports import defer_unused_imports

defer_unused_imports()  # before any TFX import: see components/deferred_imports.py
