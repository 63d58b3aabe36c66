"""The seed's practice prompts as experiments: one `sparse-ae train` command each, and a results table.

Each experiment is the documented command (docs/experiments.md), run in a fresh
process as a user would run it; the table is read from each run's metrics.json, never from the logs.

    python scripts/experiments.py                 # all of them (make experiments)
    python scripts/experiments.py --dry-run       # print the commands only
    python scripts/experiments.py --only rho_0.02 --dataset garment_shapes/small --epochs 1
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence

METRICS_FILE = "metrics.json"  # what sparse_ae.train writes (not imported: keeps this script TensorFlow-free)
RESULTS_FILE = "results.md"


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    prompt: str  # the seed's practice prompt it answers
    overrides: tuple[str, ...]  # --set key=value of `sparse-ae train`


EXPERIMENTS = (
    Experiment("baseline", "the defaults (TopK 6 of 64 relu units, sparsity_target 0.05, sparsity_weight 0.01)", ()),
    Experiment("rho_0.02", "1. lower sparsity_target to 0.02", ("model.sparsity_target=0.02",)),
    # The default latent is relu already: the prompt's swap, the other way round (TopK of sigmoid units).
    Experiment(
        "sigmoid_latent", "2. swap the latent activation (relu <-> sigmoid)", ("model.latent_activation=sigmoid",)
    ),
    # 0.2 is a tenth of the [-1, 1] pixel range; validation inputs stay clean.
    Experiment("denoising", "3. denoising: Gaussian noise (σ = 0.2) on the inputs", ("model.noise_stddev=0.2",)),
)


def command(experiment: Experiment, dataset: str, data_dir: str, epochs: int, output: str) -> list[str]:
    """The `sparse-ae train` command line of one experiment."""
    sets = [part for override in experiment.overrides for part in ("--set", override)]
    return [
        "sparse-ae",
        "train",
        "--dataset",
        dataset,
        "--set",
        f"dataset.data_dir={data_dir}",
        "--set",
        f"model.epochs={epochs}",
        *sets,
        "--output",
        os.path.join(output, experiment.name),
    ]


def run(argv: list[str]) -> None:
    """Run `sparse-ae ...` with this interpreter's console script (the same entry point as the command)."""
    script = os.path.join(os.path.dirname(sys.executable), argv[0])
    launcher = [script] if os.path.exists(script) else [sys.executable, "-m", "pipeline.cli"]
    subprocess.run(launcher + argv[1:], check=True)


def table(experiments: Sequence[Experiment], output: str, dataset: str, epochs: int, date: str | None = None) -> str:
    """A Markdown table of the runs' final validation metrics, read from their metrics.json."""
    date = date or datetime.date.today().isoformat()
    rows = [
        f"`{dataset}`, {epochs} epochs, measured {date}; final epoch on the validation split (`test`, clean "
        "inputs), the code's sparsity per image with the best epoch's weights; KL = Σ_j KL(ρ ‖ ρ̂_j), unweighted.",
        "",
        "| Experiment | Prompt | `--set` | PSNR (dB) | Recon loss (MSE) | KL penalty | Mean activation "
        "| sparsity_target | Active units per image | Hoyer | Zeroing cost (dB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for experiment in experiments:
        metrics = json.load(open(os.path.join(output, experiment.name, METRICS_FILE)))
        code = metrics["code_sparsity"]  # the eval split's sparsity per image (sparse_ae/sparsity.py)
        sets = ", ".join(f"`{override}`" for override in experiment.overrides) or "(none)"
        rows.append(
            f"| {experiment.name} | {experiment.prompt} | {sets} | {metrics['final_val_psnr']:.2f} | "
            f"{metrics['final_val_recon_loss']:.4f} | {metrics['final_val_kl_penalty']:.3f} | "
            f"{metrics['final_val_mean_activation']:.4f} | {metrics['config']['sparsity_target']} | "
            f"{code['active_units']:.1f} | {code['hoyer']:.2f} | {code['zeroing_cost']:.2f} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="garment_shapes/full")
    parser.add_argument("--data-dir", default="tfds_data", help="TFDS data_dir with the dataset prepared")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--output",
        default=os.path.join("artifacts", "experiments"),
        help="one folder per experiment, and results.md",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[e.name for e in EXPERIMENTS],
        help="run only this experiment (repeatable)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    chosen = [e for e in EXPERIMENTS if not args.only or e.name in args.only]
    for experiment in chosen:
        argv_ = command(experiment, args.dataset, args.data_dir, args.epochs, args.output)
        print(shlex.join(argv_), flush=True)
        if not args.dry_run:
            run(argv_)
    if args.dry_run:
        return 0
    text = table(chosen, args.output, args.dataset, args.epochs)
    path = os.path.join(args.output, RESULTS_FILE)
    with open(path, "w") as handle:
        handle.write(text)
    print(f"\n{text}\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
