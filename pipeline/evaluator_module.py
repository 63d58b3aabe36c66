"""The Evaluator's module (evaluation.engine=batched): TFMA on whole record batches.

TFX's Evaluator imports this module (`module_path`) and takes its `custom_extractors`; TFMA's own
evaluator (metrics per slice, baseline diffs, thresholds) and writers run unchanged, so the
output is the one TFMA's loaders, the run summary and the report read.

Why: TFMA's default extractors unbatch every record batch into per-example extracts before
slicing, and run per-example Python for each slice and metric; and its ModelSignaturesDoFn calls
the serving signature positionally, which TF 2.16 first fails to bind, formatting the whole batch
into the TypeError's text. Here one extractor calls the signature by keyword once per record
batch and model, splits the batch by the sliced features' values and hands TFMA one extract per
group, whose slice keys (the overall slice and the group's) hold for every example of it. The
metrics below then average arrays: `BatchMean` replaces MeanPrediction and `BatchExampleCount`
replaces ExampleCount, with the same metric keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.extractors.slice_key_extractor import SLICE_KEY_EXTRACTOR_STAGE_NAME
from tensorflow_model_analysis.metrics import metric_types

from sparse_ae.serving_layout import SERVING_DEFAULT

SIGNATURE_INPUT = "examples"  # the serving signature's one argument (sparse_ae/export.py)
PREDICT_STAGE = "BatchedPredict"


def _slicing_features(eval_config: tfma.EvalConfig) -> list[tuple[str, ...]]:
    """Each slicing spec as the feature keys it slices by (() for the overall slice).

    Only what this extractor can do on whole batches: whole-feature slices (no feature_values,
    no SQL); anything else is refused so that no slice is silently missing.
    """
    specs = []
    for spec in eval_config.slicing_specs:
        if spec.feature_values or spec.slice_keys_sql:
            raise ValueError(
                f"evaluation.engine=batched slices by whole features only, not {spec}; use evaluation.engine=tfma"
            )
        specs.append(tuple(sorted(spec.feature_keys)))
    return specs or [()]


def _column(batch: pa.RecordBatch, name: str) -> np.ndarray:
    """One value per example of a single-valued feature column (list<T> in TFXIO's batches)."""
    column = batch.column(batch.schema.get_field_index(name))
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        lengths = column.value_lengths().to_numpy(zero_copy_only=False)
        if not (lengths == 1).all():
            raise ValueError(f"slicing feature {name!r} must have exactly one value per example")
        column = column.flatten()
    return column.to_numpy(zero_copy_only=False)


class _PredictDoFn(beam.DoFn):
    """Adds every model's predictions for the whole record batch (one signature call per model)."""

    def __init__(self, eval_shared_models: dict[str, tfma.types.EvalSharedModel], signature: str):
        self._model_loaders = {name: model.model_loader for name, model in eval_shared_models.items()}
        self._signature_name = signature
        self._signatures: dict[str, Any] = {}

    def setup(self) -> None:
        for name, loader in self._model_loaders.items():
            self._signatures[name] = loader.load().signatures[self._signature_name]

    def process(self, extracts: dict[str, Any]) -> Iterator[dict[str, Any]]:
        import tensorflow as tf

        batch: pa.RecordBatch = extracts[constants.ARROW_RECORD_BATCH_KEY]
        raw = batch.column(batch.schema.get_field_index(constants.ARROW_INPUT_COLUMN))
        if pa.types.is_list(raw.type) or pa.types.is_large_list(raw.type):
            raw = raw.flatten()
        examples = tf.constant(raw.to_numpy(zero_copy_only=False), dtype=tf.string)
        # By keyword: a positional call makes TF 2.16 format the whole batch into an exception first.
        outputs = {}
        for name, signature in self._signatures.items():
            outputs[name] = {
                output: value.numpy() for output, value in signature(**{SIGNATURE_INPUT: examples}).items()
            }
        result = dict(extracts)
        # TFMA's convention: predictions keyed by model name only when there are several models.
        result[constants.PREDICTIONS_KEY] = outputs if len(outputs) > 1 else next(iter(outputs.values()))
        yield result


class _GroupBySliceDoFn(beam.DoFn):
    """A predicted record batch -> one extract per group of examples sharing the sliced features'
    values, whose slice keys (one per slicing spec) hold for every example of the group."""

    def __init__(self, slicing: Sequence[tuple[str, ...]]):
        self._slicing = list(slicing)
        self._keys = sorted({key for spec in slicing for key in spec})

    def process(self, extracts: dict[str, Any]) -> Iterator[dict[str, Any]]:
        predictions = extracts[constants.PREDICTIONS_KEY]
        if not self._keys:
            yield {constants.SLICE_KEY_TYPES_KEY: [()], constants.PREDICTIONS_KEY: predictions}
            return
        batch: pa.RecordBatch = extracts[constants.ARROW_RECORD_BATCH_KEY]
        values = {key: _column(batch, key) for key in self._keys}
        codes = np.stack([np.unique(values[key], return_inverse=True)[1].reshape(-1) for key in self._keys], axis=1)
        group_of = np.unique(codes, axis=0, return_inverse=True)[1].reshape(-1)
        order = np.argsort(group_of, kind="stable")
        starts = np.flatnonzero(np.diff(group_of[order]))
        for indices in np.split(order, starts + 1):
            value_of = {key: values[key][indices[0]].item() for key in self._keys}
            slice_keys = [tuple((key, value_of[key]) for key in spec) for spec in self._slicing]
            yield {
                constants.SLICE_KEY_TYPES_KEY: slice_keys,
                constants.PREDICTIONS_KEY: _take(predictions, indices),
            }


def _take(predictions: Any, indices: np.ndarray) -> Any:
    """The predictions (nested dicts of per-example arrays) of the examples at indices."""
    if isinstance(predictions, dict):
        return {key: _take(value, indices) for key, value in predictions.items()}
    return predictions[indices]


def custom_extractors(
    eval_shared_model, eval_config: tfma.EvalConfig, tensor_adapter_config=None
) -> list[tfma.extractors.Extractor]:
    """The Evaluator's hook (TFX calls it by this name): predict on whole batches, then group
    them by slice, in place of TFMA's features, predictions, unbatch and slice-key extractors.

    The second stage takes the slice-key extractor's stage name: TFMA's metrics evaluator runs
    after that stage.
    """
    models = eval_shared_model if isinstance(eval_shared_model, list) else [eval_shared_model]
    by_name = {model.model_name: model for model in models}
    signatures = {spec.signature_name or SERVING_DEFAULT for spec in eval_config.model_specs}
    if len(signatures) != 1:
        raise ValueError(f"evaluation.engine=batched needs one serving signature for all models, got {signatures}")
    return [
        tfma.extractors.Extractor(
            stage_name=PREDICT_STAGE, ptransform=beam.ParDo(_PredictDoFn(by_name, signatures.pop()))
        ),
        tfma.extractors.Extractor(
            stage_name=SLICE_KEY_EXTRACTOR_STAGE_NAME,
            ptransform=beam.ParDo(_GroupBySliceDoFn(_slicing_features(eval_config))),
        ),
    ]


# --- Metrics that average arrays ------------------------------------------------------------


class _Passthrough(metric_types.Preprocessor):
    """Hands the combiner the grouped extract as it is (no per-example StandardMetricInputs)."""

    def process(self, extracts: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield extracts


def _predictions(extracts: dict[str, Any], model_name: str) -> dict[str, np.ndarray]:
    predictions = extracts[constants.PREDICTIONS_KEY]
    if model_name and model_name in predictions and isinstance(predictions[model_name], dict):
        return predictions[model_name]
    return predictions


class _MeanCombiner(beam.CombineFn):
    """Mean of a prediction output (output_name None: the number of examples, not a mean)."""

    def __init__(self, key: metric_types.MetricKey, output_name: str | None):
        self._key = key
        self._output_name = output_name

    def create_accumulator(self) -> tuple[float, int]:
        return 0.0, 0

    def add_input(self, accumulator: tuple[float, int], extracts: dict[str, Any]) -> tuple[float, int]:
        predictions = _predictions(extracts, self._key.model_name)
        if self._output_name is None:
            return accumulator[0], accumulator[1] + len(next(iter(predictions.values())))
        values = np.asarray(predictions[self._output_name], dtype=np.float64).reshape(-1)
        return accumulator[0] + float(values.sum()), accumulator[1] + values.size

    def merge_accumulators(self, accumulators: Iterable[tuple[float, int]]) -> tuple[float, int]:
        total, count = 0.0, 0
        for part_total, part_count in accumulators:
            total, count = total + part_total, count + part_count
        return total, count

    def extract_output(self, accumulator: tuple[float, int]) -> dict[metric_types.MetricKey, Any]:
        total, count = accumulator
        if self._output_name is None:
            return {self._key: float(count)}
        return {self._key: total / count if count else float("nan")}


def _computations(
    name: str,
    model_names: list[str] | None,
    output_names: list[str] | None,
    example_weighted: bool,
    count: bool,
) -> metric_types.MetricComputations:
    if example_weighted:
        raise ValueError("evaluation.engine=batched computes unweighted metrics only")
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(
                name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted
            )
            computations.append(
                metric_types.MetricComputation(
                    keys=[key],
                    preprocessors=[_Passthrough()],
                    combiner=_MeanCombiner(key, None if count else (output_name or name)),
                )
            )
    return computations


def _batch_mean(
    name: str = "mean_prediction",
    model_names: list[str] | None = None,
    output_names: list[str] | None = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    return _computations(name, model_names, output_names, example_weighted, count=False)


def _batch_example_count(
    name: str = "example_count",
    model_names: list[str] | None = None,
    output_names: list[str] | None = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    return _computations(name, model_names, output_names, example_weighted, count=True)


class BatchMean(metric_types.Metric):
    """Mean of the serving signature's output `output_name` (MeanPrediction on whole batches)."""

    def __init__(self, name: str = "mean_prediction"):
        super().__init__(_batch_mean, name=name)


class BatchExampleCount(metric_types.Metric):
    """Number of examples (ExampleCount on whole batches)."""

    def __init__(self, name: str = "example_count"):
        super().__init__(_batch_example_count, name=name)

    @property
    def compute_confidence_interval(self) -> bool:
        return False


metric_types.register_metric(BatchMean)
metric_types.register_metric(BatchExampleCount)
