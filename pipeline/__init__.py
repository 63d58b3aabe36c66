"""Wires the components into one orchestrator-agnostic TFX pipeline (see pipeline.pipeline).

Entry points call `pipeline.process.setup()` before TensorFlow is imported (Keras 2 for TFX).
"""
