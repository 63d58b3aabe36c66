"""Tuning sparsity: the search space, the sparsity-constrained objective and the trials table.

Light on purpose (pydantic only, no TensorFlow, no TFX): `pipeline_config.py` embeds `TunerConfig`,
and the objective and table are shared by the standalone search (`sparse_ae/tuner.py`,
`sparse-ae tune` in sparse_ae/cli.py), the pipeline's Tuner (`pipeline/tuner_module.py`) and the run summary.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable
from typing import Any

import pydantic
from pydantic import Field

from sparse_ae.config import SparseAEConfig, StrictModel, build_config, merge

# The hyperparameters the search varies; everything else comes from the model config.
TUNED_KEYS = ("sparsity_target", "sparsity_weight", "latent_dim")
# Taken off the score of a trial that misses its sparsity target. PSNR of images in [-1, 1] lies
# in [0, 106] dB (MSE is at most 4 and floored at 1e-10), so with 1000 every trial that meets the
# tolerance ranks above every trial that misses it, and misses still rank among themselves by PSNR.
SPARSITY_MISS_PENALTY = 1000.0
# Score of a trial whose PSNR is not finite (diverged): below every miss.
DIVERGED_SCORE = -2 * SPARSITY_MISS_PENALTY
TRIALS_FILE = "trials.json"
OBJECTIVE = "sparsity_constrained_psnr"


class TunerConfig(StrictModel):
    """The search: ranges of sparsity_target, sparsity_weight and latent_dim, the budget, the sparsity requirement."""

    enabled: bool = Field(
        False, description="Pipeline: run a Tuner before the Trainer and train with its best hyperparameters."
    )
    sparsity_target_range: tuple[float, float] = Field(
        (0.02, 0.2), description="min,max of model.sparsity_target, 0 < min <= max < 1 (sampled uniformly)."
    )
    # Up to 0.1: on garment_shapes/full, beta 0.3 and above collapsed the code to a constant rho in
    # 2 epochs (every unit at rho, KL 0, 13.5 dB: the mean image), while beta 0.03 met rho at 15 dB.
    sparsity_weight_range: tuple[float, float] = Field(
        (1e-3, 0.1), description="min,max of model.sparsity_weight, 0 < min <= max (sampled on a log scale)."
    )
    latent_dims: tuple[int, ...] = Field(
        (32, 64, 128), min_length=1, description="Latent sizes to choose from, each > 0."
    )
    max_trials: int = Field(4, gt=0, description="Trials (models trained) in the search.")
    epochs_per_trial: int = Field(2, gt=0, description="Training epochs of each trial.")
    steps_per_epoch: int | None = Field(
        None, gt=0, description="Training steps per trial epoch; none: the whole split."
    )
    eval_steps: int | None = Field(None, gt=0, description="Validation steps per trial epoch; none: the whole split.")
    sparsity_tolerance: float = Field(
        0.02,
        gt=0.0,
        description="A trial counts only when |val mean activation - sparsity_target| <= this (absolute).",
    )
    seed: int = Field(42, ge=0, description="Seed of the random search.")

    @pydantic.field_validator("latent_dims", mode="before")
    @classmethod
    def _scalar_to_tuple(cls, value: Any) -> Any:
        """Let `--set tuner.latent_dims=64` mean (64,)."""
        return (value,) if isinstance(value, (int, str)) else value

    @pydantic.field_validator("sparsity_target_range")
    @classmethod
    def _target_range(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < bounds[0] <= bounds[1] < 1.0:
            raise ValueError("needs 0 < min <= max < 1")
        return bounds

    @pydantic.field_validator("sparsity_weight_range")
    @classmethod
    def _weight_range(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < bounds[0] <= bounds[1]:
            raise ValueError("needs 0 < min <= max (sampled on a log scale)")
        return bounds

    @pydantic.field_validator("latent_dims")
    @classmethod
    def _positive_dims(cls, dims: tuple[int, ...]) -> tuple[int, ...]:
        if any(dim <= 0 for dim in dims):
            raise ValueError("every latent size must be > 0")
        return tuple(dict.fromkeys(dims))  # KerasTuner's Choice rejects duplicates


def meets_sparsity(mean_activation: float, target: float, tolerance: float) -> bool:
    """Whether a trial's mean latent activation is within tolerance of its target rho."""
    # The epsilon keeps a value exactly at the tolerance in (0.07 - 0.05 is 0.020000000000000004).
    return math.isfinite(mean_activation) and abs(mean_activation - target) <= tolerance + 1e-9


def objective_score(psnr: float, mean_activation: float, target: float, tolerance: float) -> float:
    """Validation PSNR, minus SPARSITY_MISS_PENALTY when the trial misses rho: higher is better."""
    if not math.isfinite(psnr):
        return DIVERGED_SCORE
    return psnr if meets_sparsity(mean_activation, target, tolerance) else psnr - SPARSITY_MISS_PENALTY


@dataclasses.dataclass
class TrialResult:
    """One trial: its hyperparameters, validation figures and score."""

    trial_id: str
    sparsity_target: float
    sparsity_weight: float
    latent_dim: int
    psnr: float
    mean_activation: float
    kl_penalty: float
    score: float
    meets_sparsity: bool

    @classmethod
    def from_metrics(
        cls, trial_id: str, values: dict[str, Any], metrics: dict[str, float], tolerance: float
    ) -> TrialResult:
        """Build from the hyperparameter values and the last epoch's validation metrics."""
        target = float(values["sparsity_target"])
        psnr, activation = float(metrics["val_psnr"]), float(metrics["val_mean_activation"])
        return cls(
            trial_id=str(trial_id),
            sparsity_target=target,
            sparsity_weight=float(values["sparsity_weight"]),
            latent_dim=int(values["latent_dim"]),
            psnr=psnr,
            mean_activation=activation,
            kl_penalty=float(metrics["val_kl_penalty"]),
            score=objective_score(psnr, activation, target, tolerance),
            meets_sparsity=meets_sparsity(activation, target, tolerance),
        )


def rank_trials(trials: Iterable[TrialResult]) -> list[TrialResult]:
    """Best first by the objective (ties: the earlier trial first)."""
    return sorted(trials, key=lambda trial: -trial.score)


def apply_hyperparameters(config: SparseAEConfig, values: dict[str, Any]) -> SparseAEConfig:
    """The model config with the tuned values (only TUNED_KEYS; other entries are ignored), validated."""
    tuned = {key: values[key] for key in TUNED_KEYS if key in values}
    return build_config(SparseAEConfig, merge(config.model_dump(), tuned))


def format_trials_table(trials: Iterable[TrialResult], tolerance: float | None = None) -> str:
    """The trials sorted by the objective, one line each."""
    ranked = rank_trials(trials)
    header = (
        f"{'rank':>4} {'trial':>5} {'sparsity_target':>15} {'sparsity_weight':>15} {'latent_dim':>10} "
        f"{'PSNR dB':>8} {'mean act':>9} {'KL':>8} {'target met':>10}"
    )
    lines = [header]
    for rank, trial in enumerate(ranked, 1):
        lines.append(
            f"{rank:>4} {trial.trial_id:>5} {trial.sparsity_target:>15.4f} {trial.sparsity_weight:>15.3g} "
            f"{trial.latent_dim:>10} {trial.psnr:>8.2f} {trial.mean_activation:>9.4f} "
            f"{trial.kl_penalty:>8.4f} {'yes' if trial.meets_sparsity else 'NO':>10}"
        )
    if ranked and not any(trial.meets_sparsity for trial in ranked):
        lines.append(
            "WARNING: no trial met its sparsity_target within the tolerance; rank 1 is only the best of the misses "
            "(widen tuner.sparsity_weight_range upwards, or give trials more epochs)"
        )
    if tolerance is not None:
        lines.append(
            f"(objective: val PSNR; a trial whose mean activation is further than {tolerance:g} "
            f"from its sparsity_target ranks below every trial within it)"
        )
    return "\n".join(lines)


def save_trials(trials: Iterable[TrialResult], directory: str, tolerance: float) -> str:
    """Write trials.json (ranked) into a directory (local or remote, e.g. gs://); returns its path."""
    from sparse_ae.storage import (
        write_text,
    )  # local: keeps TensorFlow out of the command line's config checks

    path = os.path.join(directory, TRIALS_FILE)
    write_text(path, trials_json(trials, tolerance))
    return path


def trials_json(trials: Iterable[TrialResult], tolerance: float) -> str:
    """JSON text of the ranked trials and the tolerance they were judged with."""
    return json.dumps(
        {
            "objective": OBJECTIVE,
            "sparsity_tolerance": tolerance,
            "trials": [dataclasses.asdict(t) for t in rank_trials(trials)],
        },
        indent=2,
    )


def load_trials(text: str) -> tuple[list[TrialResult], float | None]:
    """Trials and tolerance back from trials_json's text."""
    content = json.loads(text)
    return [TrialResult(**item) for item in content["trials"]], content.get("sparsity_tolerance")
