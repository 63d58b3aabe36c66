"""TFX components and executors of this project (TFDS ExampleGen, ...)."""

import sparse_ae  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
from components.deferred_imports import defer_unused_imports

defer_unused_imports()  # before any TFX import: see components/deferred_imports.py
