"""Wires the components into one orchestrator-agnostic TFX pipeline (see pipeline.pipeline)."""
