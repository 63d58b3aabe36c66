"""A Resolver strategy whose baseline is the model that is live in the serving directory.

TFX's `LatestBlessedModelStrategy` picks the blessed Model with the highest artifact id. After a
manual rollback to an older model, or a promotion of a model older than the newest blessed one,
that is not the model being served, so the no-regression check would compare against the wrong
model. This strategy reads the serving state (components/serving_state.py: the live version of
`serving_dir` and the PushedModel that published it, by the pipeline's Pusher, `sparse-ae
promote` or `sparse-ae rollback`) and resolves the Model that push took as input. When nothing live is recorded
(first run, or a serving directory filled by hand) it falls back to the built-in strategy.

Kubeflow V2 compiles only the built-in strategies: `gate.baseline=latest_blessed` selects it.
"""

from __future__ import annotations

from collections.abc import Iterable

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.types import standard_artifacts

from components.lineage import artifact_executions, consumers, execution_artifacts
from components.serving_state import read_serving_state

STATISTICS_TYPE = "ExampleStatistics"


def live_model_id(store: mlmd.MetadataStore, serving_dir: str, model_ids: Iterable[int]) -> int | None:
    """The id (among model_ids) of the Model whose push published the live version, if recorded."""
    live = read_serving_state(store, serving_dir, model_ids).live
    return live.model_id if live is not None else None


class LiveModelStrategy(resolver.ResolverStrategy):
    """Resolves the Model live in `serving_dir` (and its latest blessing); else the latest blessed one."""

    def __init__(self, serving_dir: str):
        self._serving_dir = serving_dir

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        if not all(input_dict.values()):  # no model or no blessing yet (every push needs a blessing)
            return {key: [] for key in input_dict}
        model_key = next(k for k, v in input_dict.items() if isinstance(v[0], standard_artifacts.Model))
        blessing_key = next(k for k in input_dict if k != model_key)
        models = {model.id: model for model in input_dict[model_key]}
        model_id = live_model_id(store, self._serving_dir, models)
        if model_id is None:
            return LatestBlessedModelStrategy().resolve_artifacts(store, input_dict)
        blessings = sorted(
            (
                b
                for b in input_dict[blessing_key]
                if b.get_int_custom_property("current_model_id") == model_id
                and b.get_int_custom_property("blessed") == 1
            ),
            key=lambda b: b.id,
        )
        return {model_key: [models[model_id]], blessing_key: blessings[-1:]}


def training_statistics(store: mlmd.MetadataStore, model_id: int) -> list[int]:
    """Ids of the ExampleStatistics computed from the Examples the model was trained on (by lineage:
    the Model's producing execution, its `examples` input, the executions that read those and output
    statistics)."""
    produced, _ = artifact_executions(store, model_id, "model")
    examples = [
        found.inputs["examples"].id
        for found in execution_artifacts(store, produced).values()
        if "examples" in found.inputs
    ]
    readers = execution_artifacts(store, consumers(store, examples))
    return sorted(a.id for found in readers.values() for a in found.outputs.values() if a.type == STATISTICS_TYPE)


class LiveModelStatisticsStrategy(resolver.ResolverStrategy):
    """Resolves the statistics of the data the live model (in `serving_dir`) was trained on; nothing
    when no live model is recorded (first run), so a drift check has no baseline to compare with."""

    def __init__(self, serving_dir: str):
        self._serving_dir = serving_dir

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        model_key = next(k for k, v in input_dict.items() if k == "model")
        statistics_key = next(k for k in input_dict if k != model_key)
        empty: dict[str, list[types.Artifact]] = {key: [] for key in input_dict}
        models = {model.id: model for model in input_dict[model_key]}
        model_id = live_model_id(store, self._serving_dir, models) if models else None
        if model_id is None:
            return empty
        ids = set(training_statistics(store, model_id))
        found = sorted((s for s in input_dict[statistics_key] if s.id in ids), key=lambda s: s.id)
        return {model_key: [models[model_id]], statistics_key: found[-1:]} if found else empty
