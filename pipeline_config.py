"""The one configuration of the whole pipeline: typed, validated, overridable with --set key=value.

The pipeline, the runners and the model config are all derived from `PipelineConfig`.
"""
from __future__ import annotations

from sparse_ae.config import SparseAEConfig, StrictModel


class PipelineConfig(StrictModel):
    """Pipeline settings; `model` holds the sparse autoencoder's hyperparameters."""

    pipeline_name: str = "sparse_ae"
    model: SparseAEConfig = SparseAEConfig()
