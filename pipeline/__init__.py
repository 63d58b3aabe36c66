"""Wires the components into one orchestrator-agnostic TFX pipeline (see pipeline.pipeline)."""
from components.deferred_imports import defer_unused_imports

defer_unused_imports()  # before any TFX import: see components/deferred_imports.py
