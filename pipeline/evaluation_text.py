"""The facts of a candidate's evaluation in words, each sentence defined once: the run summary
(`pipeline run`), the run report's verdict and `models` only arrange these sentences.

A gate (pipeline.evaluation.recorded_gate: GATE_KEYS -> bound or None) appends each figure's
bound ("required: ..." or "not gated"); without one, or with one that records no bound at all
(an Evaluator execution without a readable eval_config), the sentences carry no bounds.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.evaluation_record import Evaluation

Gate = Mapping[str, float | None]


def _known(gate: Gate | None) -> bool:
    """Whether gate records the Evaluator's bounds (all None: unknown, not 'nothing gated')."""
    return gate is not None and any(value is not None for value in gate.values())


def bound(gate: Gate | None, key: str, text: str, word: str = "required") -> str:
    """' (required: <text with gate[key]>)', ' (not gated)', or '' without a known gate."""
    if gate is None or not _known(gate):
        return ""
    value = gate.get(key)
    return " (not gated)" if value is None else f" ({word}: {text.format(value)})"


def psnr_line(evaluation: Evaluation, gate: Gate | None = None) -> str | None:
    """The eval PSNR over the eval split and, when a baseline was compared, its PSNR and the change."""
    psnr, baseline = evaluation.psnr, evaluation.baseline_psnr
    if psnr is None and baseline is None:
        return None
    line = (
        f"Eval PSNR: {psnr:.2f} dB over {evaluation.example_count} examples"
        + bound(gate, "psnr_threshold", "at least {:g} dB")
        if psnr is not None
        else "Eval PSNR: not measured"
    )
    if baseline is None:
        return line + "; no baseline: the absolute thresholds alone decided"
    # TFMA's output has the two PSNRs independently: a baseline's alone has no change to show.
    change = f", change {psnr - baseline:+.2f} dB" if psnr is not None else ""
    allowed = bound(gate, "change_tolerance", "a drop of at most {:g} dB", word="allowed")
    return f"{line}; baseline {baseline:.2f} dB{change}{allowed}"


def baseline_line(note: str, model_id: int | None) -> str | None:
    """Which model the no-regression check compared against (run_summary.describe_baseline's note)."""
    if not note and model_id is None:
        return None
    return f"Baseline: {note or f'model {model_id}'}"


def active_size(evaluation: Evaluation) -> str:
    """k of PCA-k at the code's active size: the rounded mean active units, as the Trainer chose it."""
    return "k" if evaluation.active_units is None else str(max(1, round(evaluation.active_units)))


def sparsity_line(evaluation: Evaluation, gate: Gate | None = None, code_sparsity: dict | None = None) -> str | None:
    """The code's sparsity per image: active units (of the code's size), Hoyer, dead units.

    code_sparsity: the Trainer's measurement (run_summary.read_code_sparsity), for the code's size
    and its dead units, which the Evaluator does not measure."""
    if evaluation.active_units is None:
        return None
    code = code_sparsity or {}
    line = (
        f"Code sparsity per image: {evaluation.active_units:.1f} active units"
        + (f" of {code['units']}" if "units" in code else "")
        + bound(gate, "max_active_units", "at most {:g}")
    )
    if evaluation.hoyer is not None:
        line += f", Hoyer {evaluation.hoyer:.2f}" + bound(gate, "min_hoyer", "at least {:g}")
    if code.get("dead_fraction") is not None:
        line += f", dead units {code['dead_fraction']:.0%}"
    return line


def zeroing_line(evaluation: Evaluation, gate: Gate | None = None) -> str | None:
    """The PSNR with only the active units decoded, and what zeroing the others costs."""
    if evaluation.psnr_active_only is None or evaluation.zeroing_cost is None:
        return None
    return (
        f"With only the active units decoded: {evaluation.psnr_active_only:.2f} dB, "
        f"{evaluation.zeroing_cost:.2f} dB lost" + bound(gate, "max_zeroing_cost", "at most {:g} dB lost")
    )


def linear_baseline_lines(evaluation: Evaluation, gate: Gate | None = None) -> list[str]:
    """PCA at the code's active size and at its full size, and the model's gain over each."""
    lines = []
    for what, linear, key in (
        (
            f"PCA-{active_size(evaluation)}, the code's active size",
            evaluation.linear_baseline_psnr_at_active,
            "min_gain_over_linear",
        ),
        ("PCA of the full code size", evaluation.linear_baseline_psnr, "min_gain_over_full_linear"),
    ):
        if linear is not None and evaluation.psnr is not None:
            lines.append(
                f"Linear baseline ({what}): {linear:.2f} dB; the model {evaluation.psnr - linear:+.2f} dB"
                + bound(gate, key, "at least {:+g} dB")
            )
    return lines


def activation_line(evaluation: Evaluation, gate: Gate | None = None) -> str | None:
    """The eval split's mean latent activation and its ratio to the model's sparsity_target."""
    if evaluation.mean_activation is None:
        return None
    ratio = (
        f", {evaluation.activation_to_target:.2f} x sparsity_target"
        if evaluation.activation_to_target is not None
        else ""
    )
    tolerance = gate.get("sparsity_tolerance") if gate is not None else None
    # formatted here, as a percentage; bound() formats only the bound itself
    within = f"within ±{tolerance * 100:g}% of sparsity_target" if tolerance is not None else ""
    return f"Mean latent activation: {evaluation.mean_activation:.4f}{ratio}" + bound(
        gate, "sparsity_tolerance", within
    )


def code_lines(evaluation: Evaluation, gate: Gate | None = None, code_sparsity: dict | None = None) -> list[str]:
    """The code's figures: sparsity per image, zeroing cost, linear baselines, mean activation."""
    lines = [sparsity_line(evaluation, gate, code_sparsity), zeroing_line(evaluation, gate)]
    lines += linear_baseline_lines(evaluation, gate)
    lines.append(activation_line(evaluation, gate))
    return [line for line in lines if line is not None]


def evaluation_lines(
    evaluation: Evaluation,
    gate: Gate | None = None,
    code_sparsity: dict | None = None,
    baseline_note: str = "",
    baseline_model_id: int | None = None,
) -> list[str]:
    """Everything measured of the candidate, in order: PSNR, the baseline, the code's figures."""
    lines = [psnr_line(evaluation, gate), baseline_line(baseline_note, baseline_model_id)]
    return [line for line in lines if line is not None] + code_lines(evaluation, gate, code_sparsity)


def refused_line(failure: str) -> str:
    """One failed gate condition (evaluation_record.describe_failures' words)."""
    return f"refused: {failure}"


def decision_lines(blessed: bool | None, failures: list[str]) -> list[str]:
    """The gate's decision and, when it refused, each failed condition."""
    if blessed is None:
        return []
    return ["Blessed: yes" if blessed else "Blessed: no"] + [refused_line(failure) for failure in failures]


def how_live(action: str, user: str, reason: str) -> str:
    """How a version became live: a pipeline push, or a manual action with who and why."""
    if action in ("", "pipeline"):
        return "pushed by the pipeline"
    return f"{'manual promotion' if action == 'promote' else action} by {user}: {reason}"


def made_live_line(model_id: int, action: str, user: str, reason: str, version: str) -> str:
    """A promotion or rollback that made model_id live (without 'Manually: ', see manual_line)."""
    return f"model {model_id} made live by {how_live(action, user, reason)} (version {version})"


def manual_line(action: str) -> str:
    """A promotion or rollback of a model (made_live_line's sentence), as the summary and `models` list it."""
    return f"Manually: {action}"


def drift_lines(drift: dict | None) -> list[str]:
    """The drift check (DriftValidator's record): a header with the threshold, then one sentence per feature."""
    if drift is None:
        return []
    if not drift.get("baseline"):
        return ["Drift: no baseline (no live model recorded yet); nothing compared"]
    threshold = drift.get("threshold")
    limit = f"threshold {threshold:g}" if threshold is not None else "no threshold: report only"
    lines = [
        f"Drift of the {drift.get('split', 'train')} split from the live model's data "
        f"(statistics {drift.get('baseline_id')}; {limit}):"
    ]
    for item in drift.get("measured", []):
        over = threshold is not None and item["value"] > threshold
        lines.append(f"{item['feature']} {item['measure']} {item['value']:.4f}{' EXCEEDED' if over else ''}")
    return lines


def bulk_inference_line(found: dict) -> str:
    """BulkInferrer's split scored against the model's calibration (run_summary.count_flagged)."""
    return (
        f"Bulk inference: {found['flagged']} of {found['count']} images flagged as anomalous "
        f"({100 * found['flagged'] / max(found['count'], 1):.2f}%; MSE > {found['threshold']:.6g}, the "
        f"model's {found['quantile']:g} quantile)"
    )
