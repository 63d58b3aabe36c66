"""Tuning sparsity: the objective's ordering, the standalone `sparse-ae tune`, and a LocalDagRunner
run with the Tuner on garment_shapes/small whose Trainer must use the Tuner's best values."""

import json
import os

import pytest
from helpers import small_pipeline_overrides

from sparse_ae import cli
from sparse_ae.config import SparseAEConfig
from sparse_ae.errors import ConfigError
from sparse_ae.tuning import (
    SPARSITY_MISS_PENALTY,
    TRIALS_FILE,
    TrialResult,
    apply_hyperparameters,
    format_trials_table,
    load_trials,
    objective_score,
    rank_trials,
)

# Tiny, and chosen so that 3 seeded trials of 1 epoch give both outcomes: a small beta leaves the
# mean activation far above rho (a miss with the better PSNR), a large one pulls it to rho (a meet).
TINY_SEARCH = [
    # the dense sigmoid code, whose mean activation the KL penalty alone steers (the objective's figure)
    "model.latent_top_k=none",
    "model.latent_batch_norm=false",
    "model.latent_activation=sigmoid",
    "model.hidden_dims=64",
    "model.batch_size=64",
    "model.learning_rate=0.003",
    "model.shuffle_buffer=512",
    "tuner.latent_dims=8,16",
    "tuner.sparsity_target_range=0.05,0.15",
    "tuner.sparsity_weight_range=0.0001,30",
    "tuner.sparsity_tolerance=0.03",
    "tuner.max_trials=3",
    "tuner.epochs_per_trial=1",
]


def trial(trial_id, psnr, activation, target=0.05, tolerance=0.02):
    return TrialResult.from_metrics(
        trial_id,
        {"sparsity_target": target, "sparsity_weight": 0.1, "latent_dim": 16},
        {"val_psnr": psnr, "val_mean_activation": activation, "val_kl_penalty": 0.0},
        tolerance,
    )


def test_a_trial_that_misses_rho_ranks_below_every_trial_that_meets_it():
    meets_low, misses_high, meets_high, misses_low = (
        trial("a", 12.0, 0.06),
        trial("b", 30.0, 0.30),
        trial("c", 18.0, 0.04),
        trial("d", 20.0, 0.50),
    )
    diverged = trial("e", float("nan"), 0.05)
    ranked = [t.trial_id for t in rank_trials([meets_low, misses_high, meets_high, misses_low, diverged])]
    assert ranked == ["c", "a", "b", "d", "e"]
    assert objective_score(18.0, 0.07, 0.05, 0.02) == 18.0  # exactly at the tolerance still counts
    assert objective_score(18.0, 0.0701, 0.05, 0.02) == 18.0 - SPARSITY_MISS_PENALTY
    assert objective_score(106.0, 0.9, 0.05, 0.02) < objective_score(0.0, 0.05, 0.05, 0.02)
    assert "WARNING: no trial met" in format_trials_table([misses_high, misses_low])
    assert "WARNING" not in format_trials_table([misses_high, meets_low])


def test_best_values_override_only_the_tuned_keys():
    base = SparseAEConfig(hidden_dims=(64,), epochs=3)
    tuned = apply_hyperparameters(base, {"sparsity_target": 0.1, "sparsity_weight": 0.5, "latent_dim": 8, "other": 1})
    assert (tuned.sparsity_target, tuned.sparsity_weight, tuned.latent_dim) == (0.1, 0.5, 8)
    assert (tuned.hidden_dims, tuned.epochs) == ((64,), 3)
    with pytest.raises(ConfigError, match="sparsity_target"):
        apply_hyperparameters(base, {"sparsity_target": 1.5})


@pytest.mark.parametrize(
    "setting, words",
    [
        ("tuner.sparsity_target_range=0.2,0.1", "min <= max"),
        ("tuner.sparsity_weight_range=0,1", "log scale"),
        ("tuner.max_trials=0", "max_trials"),
        ("tuner.latent_dims=0,8", "latent size"),
        ("tuner.budget=3", "unknown key"),
    ],
)
def test_bad_tune_settings_exit_2_with_one_line(setting, words, capsys):
    assert cli.main(["tune", "--dataset", "garment_shapes/small", "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err


@pytest.mark.slow  # two training trials
def test_standalone_search_prints_the_ranked_table(garment_data_dir, tmp_path, capsys):
    overrides = sum((["--set", item] for item in TINY_SEARCH + ["tuner.max_trials=2"]), [])
    assert (
        cli.main(
            [
                "tune",
                "--dataset",
                "garment_shapes/small",
                "--set",
                f"dataset.data_dir={garment_data_dir}",
                "--set",
                "dataset.download=false",
                "--output",
                str(tmp_path),
                *overrides,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    trials, tolerance = load_trials(open(tmp_path / TRIALS_FILE).read())
    assert len(trials) == 2 and tolerance == 0.03
    assert trials == rank_trials(trials)
    assert format_trials_table(trials, tolerance) in out
    assert "[tuner] trial 0 done" in out and "[tuner] trial 1 done" in out  # progress


@pytest.fixture(scope="module")
def tuned_run(garment_data_dir, tmp_path_factory):
    from pipeline.local_runner import run_local
    from pipeline.run_summary import format_summary, summarize_run
    from pipeline_config import load_config

    root = tmp_path_factory.mktemp("tuned")
    config = load_config(
        small_pipeline_overrides(root, garment_data_dir) + ["gate.psnr_threshold=5", "tuner.enabled=true", *TINY_SEARCH]
    )
    run_local(config)
    summary = summarize_run(config.absolute().resolved_metadata_path, config.pipeline_name)
    return summary, format_summary(summary)


@pytest.mark.e2e
def test_pipeline_trainer_uses_the_tuners_best_hyperparameters(tuned_run):
    summary, _ = tuned_run
    states = dict(summary.components)
    assert states["Tuner"] == "complete" and states["Trainer"] == "complete" and not summary.failed
    best_dir = summary.artifacts["Tuner.best_hyperparameters"]
    best = json.load(open(os.path.join(best_dir, "best_hyperparameters.txt")))["values"]
    # The model run's recorded config: what the Trainer actually trained.
    recorded = json.load(open(os.path.join(summary.artifacts["Trainer.model_run"], "metrics.json")))["config"]
    assert {key: recorded[key] for key in best} == best
    assert best != {key: getattr(SparseAEConfig(), key) for key in best}
    # ... and those are the values of the top trial of the table.
    top = summary.tuner_trials[0]
    assert best == {
        "sparsity_target": top["sparsity_target"],
        "sparsity_weight": top["sparsity_weight"],
        "latent_dim": top["latent_dim"],
    }
    assert summary.blessed is True and summary.pushed_path


@pytest.mark.e2e
def test_pipeline_tuner_ranks_trials_that_miss_rho_below_those_that_meet_it(tuned_run):
    summary, report = tuned_run
    trials = [TrialResult(**item) for item in summary.tuner_trials]
    assert len(trials) == 3 and summary.tuner_tolerance == 0.03
    for item in trials:
        assert item.meets_sparsity == (abs(item.mean_activation - item.sparsity_target) <= 0.03)
    meets = [t for t in trials if t.meets_sparsity]
    misses = [t for t in trials if not t.meets_sparsity]
    assert meets and misses, "the tiny search is meant to produce both outcomes"
    # Every miss ranks below every meet, even a miss with the higher PSNR.
    assert trials == meets + misses == rank_trials(trials)
    assert trials[0].meets_sparsity
    assert max(t.psnr for t in misses) > trials[0].psnr  # the best PSNR alone would have picked a miss
    assert "Tuner trials (3" in report and format_trials_table(trials, 0.03).splitlines()[1] in report
