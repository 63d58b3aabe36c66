"""What the Evaluator measured of one candidate, read back from its output (TFMA's metrics and
validation result) into a typed record: the run summary, the report and `models` read it here."""

from __future__ import annotations

import dataclasses

from pipeline.evaluation import (
    ACTIVE_UNITS_METRIC,
    BOUNDED_METRICS,
    HOYER_METRIC,
    LABEL_FEATURE,
    LINEAR_PSNR_AT_ACTIVE_METRIC,
    LINEAR_PSNR_METRIC,
    MEAN_ACTIVATION_METRIC,
    PSNR_ACTIVE_ONLY_METRIC,
    PSNR_METRIC,
    TARGET_RATIO_METRIC,
    ZEROING_COST_METRIC,
)


@dataclasses.dataclass
class Evaluation:
    """One Evaluator output: the candidate's figures on the eval split, the baseline's PSNR, and
    why the gate refused it (empty when it passed)."""

    psnr: float | None = None
    baseline_psnr: float | None = None
    class_psnr: dict[int, float] = dataclasses.field(default_factory=dict)
    baseline_class_psnr: dict[int, float] = dataclasses.field(default_factory=dict)
    example_count: int | None = None
    mean_activation: float | None = None  # the eval split's mean latent activation
    activation_to_target: float | None = None  # mean_activation / the model's sparsity_target
    linear_baseline_psnr: float | None = None  # PCA of the same code size on the eval split
    # The code's sparsity per image on the eval split (sparse_ae/sparsity.py), as the Evaluator measured it
    active_units: float | None = None  # mean active units per image
    hoyer: float | None = None  # mean Hoyer sparsity per image
    psnr_active_only: float | None = None  # PSNR with every inactive unit set to 0
    zeroing_cost: float | None = None  # psnr - psnr_active_only
    linear_baseline_psnr_at_active: float | None = None  # PCA with the code's active size
    failures: list[str] = dataclasses.field(default_factory=list)  # the gate's failed conditions, in words

    def worst_class(self) -> tuple[int, float] | None:
        """(label, PSNR) of the class reconstructed worst; None without per-class figures."""
        return min(self.class_psnr.items(), key=lambda item: item[1]) if self.class_psnr else None


# Candidate-only figures of the overall slice: metric name -> Evaluation field.
_OVERALL_FIGURES = {
    MEAN_ACTIVATION_METRIC: "mean_activation",
    TARGET_RATIO_METRIC: "activation_to_target",
    LINEAR_PSNR_METRIC: "linear_baseline_psnr",
    ACTIVE_UNITS_METRIC: "active_units",
    HOYER_METRIC: "hoyer",
    PSNR_ACTIVE_ONLY_METRIC: "psnr_active_only",
    ZEROING_COST_METRIC: "zeroing_cost",
    LINEAR_PSNR_AT_ACTIVE_METRIC: "linear_baseline_psnr_at_active",
}
# What each bounded gate condition measures, in words (pipeline.evaluation.BOUNDED_METRICS).
_CONDITION_WORDS = {
    "max_active_units": ("sparsity: active units per image", ""),
    "min_hoyer": ("sparsity: Hoyer sparsity per image", ""),
    "max_zeroing_cost": ("sparsity: PSNR lost when the inactive units are zeroed", " dB"),
    "min_gain_over_linear": ("linear baseline: PSNR gain over PCA at the code's active size", " dB"),
    "min_gain_over_full_linear": ("linear baseline: PSNR gain over PCA of the full code size", " dB"),
}
_CONDITION_OF_METRIC = {metric: key for key, (metric, _) in BOUNDED_METRICS.items()}


def read_evaluation(uri: str) -> Evaluation:
    """The Evaluator's output at uri (TFMA's metrics and validation result; uri may be remote):
    PSNR overall, per class and of the baseline, the sparsity and linear-baseline figures and the
    gate's failures in words."""
    import tensorflow_model_analysis as tfma

    found = Evaluation()
    for slice_metrics in tfma.load_metrics(uri):
        keys = slice_metrics.slice_key.single_slice_keys
        for item in slice_metrics.metric_keys_and_values:
            key, value = item.key, item.value.double_value.value
            candidate = key.model_name != "baseline" and not key.is_diff
            if key.name == "example_count" and not keys and candidate:
                found.example_count = int(value)
            if key.name in _OVERALL_FIGURES and not keys and candidate:
                setattr(found, _OVERALL_FIGURES[key.name], value)
            if key.name != PSNR_METRIC or key.is_diff:
                continue
            if key.model_name == "baseline":
                if not keys:
                    found.baseline_psnr = value
                elif len(keys) == 1 and keys[0].column == LABEL_FEATURE:
                    found.baseline_class_psnr[int(keys[0].int64_value)] = value
            elif not keys:
                found.psnr = value
            elif len(keys) == 1 and keys[0].column == LABEL_FEATURE:
                found.class_psnr[int(keys[0].int64_value)] = value
    found.failures = describe_failures(tfma.load_validation_result(uri))
    return found


def describe_failures(validation) -> list[str]:
    """Each failed threshold in words: which slice, which bound, the value and the shortfall."""
    messages = []
    for per_slice in validation.metric_validations_per_slice:
        keys = per_slice.slice_key.single_slice_keys
        where = (
            ", ".join(f"{k.column}={k.int64_value or k.bytes_value.decode() or k.float_value}" for k in keys)
            or "overall"
        )
        for failure in per_slice.failures:
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            if failure.message:  # e.g. a threshold on a metric that was never computed
                messages.append(f"{where}: {failure.metric_key.name}: {failure.message}")
            elif failure.metric_key.is_diff:
                bound = threshold.change_threshold.absolute.value
                messages.append(
                    f"{where}: {failure.metric_key.name} changed by {value:+.3f} dB against the "
                    f"baseline, below the allowed {bound:+.3f} dB (short by {bound - value:.3f})"
                )
            elif failure.metric_key.name == TARGET_RATIO_METRIC:
                low, high = (
                    threshold.value_threshold.lower_bound.value,
                    threshold.value_threshold.upper_bound.value,
                )
                side = (
                    f"above the allowed {high:.2f} by {value - high:.3f}"
                    if value > high
                    else f"below the allowed {low:.2f} by {low - value:.3f}"
                )
                messages.append(
                    f"{where}: sparsity: mean latent activation is {value:.3f} x sparsity_target, {side} "
                    f"(gate.sparsity_tolerance {high - 1:.2f})"
                )
            elif failure.metric_key.name in _CONDITION_OF_METRIC:
                messages.append(
                    f"{where}: {describe_bound(_CONDITION_OF_METRIC[failure.metric_key.name], value, threshold)}"
                )
            elif threshold.value_threshold.HasField("lower_bound"):
                bound = threshold.value_threshold.lower_bound.value
                messages.append(
                    f"{where}: {failure.metric_key.name} {value:.3f} dB < threshold {bound:.3f} dB "
                    f"(short by {bound - value:.3f})"
                )
            else:
                messages.append(f"{where}: {failure.metric_key.name} = {value} failed its threshold")
    if not validation.validation_ok and not messages:
        messages.append("validation failed: " + str(validation).strip().replace("\n", " ")[:500])
    return messages


def describe_bound(key: str, value: float, threshold) -> str:
    """A failed gate.<key> condition in words: the figure, the bound and how far it missed."""
    words, unit = _CONDITION_WORDS[key]
    if BOUNDED_METRICS[key][1] == "upper":
        bound = threshold.value_threshold.upper_bound.value
        return f"{words} {value:.3f}{unit} > allowed {bound:.3f}{unit} (over by {value - bound:.3f}; gate.{key})"
    bound = threshold.value_threshold.lower_bound.value
    return f"{words} {value:+.3f}{unit} < required {bound:+.3f}{unit} (short by {bound - value:.3f}; gate.{key})"
