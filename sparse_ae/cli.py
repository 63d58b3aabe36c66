"""The model library's commands: prepare, train, reconstruct, baseline, tune (no TFX involved).

They take the pipeline's own keys: `--set model.sparsity_target=0.02`, `--set dataset.name=...`,
`--set dataset.data_dir=DIR`, `--set dataset.download=false`; `--dataset NAME` is kept as the short
form of `--set dataset.name=NAME` (as on `pipeline run`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from sparse_ae import process
from sparse_ae.config import DatasetConfig, SparseAEConfig, StrictModel, add_set_argument, config_from_args
from sparse_ae.dataset_names import check_dataset_name, did_you_mean
from sparse_ae.errors import ConfigError, DatasetUnavailableError, DataValidationError, TrainingDivergedError
from sparse_ae.tuning import TRIALS_FILE, TunerConfig

Handler = Callable[[argparse.Namespace], int]


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad arguments end with one line on stderr and exit status 2, without the usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


DATASET_ALIAS = {"dataset": "dataset.name"}  # --dataset NAME is --set dataset.name=NAME
SET_EXAMPLE = "model.sparsity_target=0.02, dataset.data_dir=tfds_data, dataset.download=false"


class CommandConfig(StrictModel):
    """What prepare, train, reconstruct and baseline read: the pipeline's `model.*` and `dataset.*` keys."""

    model: SparseAEConfig = SparseAEConfig()
    dataset: DatasetConfig = DatasetConfig()


class TuneConfig(CommandConfig):
    """`sparse-ae tune`'s configuration: also the pipeline's `tuner.*` keys."""

    tuner: TunerConfig = TunerConfig()


def command_config(
    args: argparse.Namespace, kind: type[CommandConfig] = CommandConfig, model: dict | None = None
) -> CommandConfig:
    """Defaults, then model values (a preset, or the config recorded beside the weights), then the
    project folder's settings file, then --dataset and the --set overrides; validated, the dataset's
    name too (ConfigError)."""
    config = config_from_args(kind, args, DATASET_ALIAS, {"model": model} if model else None, workspace=True)
    check_dataset_name(
        config.dataset.name, config.dataset.data_dir
    )  # before any work: a misspelt name is one line, not TFDS's catalogue
    return config


class Replaced(argparse.Action):
    """A flag that a config key replaced: using it ends with one line naming the key."""

    def __init__(self, option_strings, dest, replacement: str, nargs=None, **kwargs):
        super().__init__(option_strings, dest, nargs=nargs, help=argparse.SUPPRESS, **kwargs)
        self.replacement = replacement

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} was replaced by {self.replacement}")


def cmd_prepare(args: argparse.Namespace) -> int:
    config = command_config(args)
    from sparse_ae.data import tfds_builder

    builder = tfds_builder(config.dataset.tfds_name, data_dir=config.dataset.data_dir, download=True)
    print(f"{config.dataset.tfds_name} prepared in {builder.data_dir}")
    return 0


def add_preset_argument(parser: argparse.ArgumentParser) -> None:
    from sparse_ae.presets import PRESETS

    parser.add_argument(
        "--preset",
        default="default",
        choices=sorted(PRESETS),
        help="named model settings under the --set overrides: default, or seed (the seed "
        "project's configuration; see docs/model-defaults.md)",
    )


def cmd_train(args: argparse.Namespace) -> int:
    from sparse_ae.presets import preset

    settings = command_config(args, model=preset(args.preset))  # validated before the slow TensorFlow import
    config, dataset = settings.model, settings.dataset
    from sparse_ae.train import METRICS_FILE, WEIGHTS_FILE, train

    summary = train(
        config,
        dataset.tfds_name,
        args.output,
        data_dir=dataset.data_dir,
        train_split=dataset.split_for("train"),
        val_split=dataset.split_for("eval"),
        download=dataset.download,
    )
    print(
        f"best epoch {summary['best_epoch']} of {summary['epochs_run']} (val_loss {summary['best_val_loss']:.5f}): "
        f"val_psnr {summary['best_val_psnr']:.2f} dB, val_kl_penalty {summary['best_val_kl_penalty']:.4f}, "
        f"mean activation {summary['best_val_mean_activation']:.4f} (sparsity_target {config.sparsity_target})"
    )
    code = summary["code_sparsity"]
    print(
        f"code sparsity per image: {code['active_units']:.1f} of {code['units']} units active, Hoyer "
        f"{code['hoyer']:.2f}, dead units {code['dead_fraction']:.0%}; with only the active units decoded "
        f"{code['psnr_active_only']:.2f} dB ({code['zeroing_cost']:.2f} dB lost)"
    )
    for linear in (summary["linear_baseline_at_active"], summary["linear_baseline"]):
        print(
            f"linear baseline on {dataset.tfds_name}: PCA-{linear['code_size']} val_psnr {linear['eval_psnr']:.2f} "
            f"dB; the model {summary['best_val_psnr'] - linear['eval_psnr']:+.2f} dB"
        )
    print(f"wrote {os.path.join(args.output, WEIGHTS_FILE)} and {os.path.join(args.output, METRICS_FILE)}")
    for warning in training_warnings(summary, config):
        print(f"warning: {warning}")
    return 0


def training_warnings(summary: dict, config: SparseAEConfig) -> list[str]:
    """What the trained model misses: its sparsity target (by more than the tuner's
    sparsity_tolerance) and the linear baseline (PCA with as many components as the code's active units)."""
    warnings = []
    activation, target = summary["best_val_mean_activation"], config.sparsity_target
    tolerance = TunerConfig().sparsity_tolerance
    if abs(activation - target) > tolerance:
        warnings.append(
            f"mean activation {activation:.4f} is {activation / target:.1f}x sparsity_target {target} (more than "
            f"{tolerance} from it): the code is not as sparse as asked; train longer (model.epochs) or change "
            f"model.sparsity_weight"
        )
    linear = summary["linear_baseline_at_active"]
    gain = summary["best_val_psnr"] - linear["eval_psnr"]
    if gain < 0:
        warnings.append(
            f"val_psnr is {-gain:.2f} dB below PCA-{linear['code_size']}, a linear code of the size of this code's "
            f"active units: train longer (model.epochs); the pipeline's gate refuses such a model "
            f"(gate.min_gain_over_linear)"
        )
    return warnings


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import numpy as np
    import tensorflow as tf

    from sparse_ae.data import load_images
    from sparse_ae.inference import load_model, reconstruct, to_uint8
    from sparse_ae.plots import save_reconstruction_grid
    from sparse_ae.storage import is_remote, read_text
    from sparse_ae.train import METRICS_FILE

    # Weights, metrics.json and the PNG may be remote (gs://...), as `train --output` may write them.
    weights = args.weights if is_remote(args.weights) else os.path.abspath(args.weights)
    if not tf.io.gfile.exists(weights):
        raise ConfigError(f"--weights {args.weights!r}: no such file")
    # The architecture comes from the metrics.json written beside the weights, when present.
    recorded = os.path.join(os.path.dirname(weights), METRICS_FILE)
    base = json.loads(read_text(recorded))["config"] if tf.io.gfile.exists(recorded) else {}
    settings = command_config(args, model=base)
    config, dataset = settings.model, settings.dataset
    split = args.split or dataset.split_for("eval")
    images = np.stack(
        list(
            load_images(dataset.tfds_name, split, dataset.data_dir, dataset.download)
            .take(args.count)
            .as_numpy_iterator()
        )
    )
    model = load_model(weights, config)
    save_reconstruction_grid(images, to_uint8(reconstruct(model, images)), args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    settings = command_config(args)
    dataset = settings.dataset
    code_size = settings.model.latent_dim if args.code_size is None else args.code_size
    fit_split, eval_split = (
        args.fit_split or dataset.split_for("train"),
        args.eval_split or dataset.split_for("eval"),
    )
    from sparse_ae.linear_baseline import fit_on_tfds

    if code_size <= 0:
        raise ConfigError(f"--code-size {code_size}: must be > 0")
    try:
        result = fit_on_tfds(
            dataset.tfds_name,
            fit_split,
            eval_split,
            code_size,
            data_dir=dataset.data_dir,
            download=dataset.download,
        )[1]
    except ValueError as error:  # a code size beyond the pixel count, an empty split
        raise ConfigError(str(error)) from None
    print(
        f"{dataset.tfds_name}: PCA-{result['code_size']} (fitted on {fit_split}, {result['fitted_on_images']} "
        f"images) eval PSNR on {eval_split} ({result['eval_images']} images) {result['eval_psnr']:.2f} dB, "
        f"MSE {result['eval_mse']:.5f}"
    )
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Run the search standalone (no TFX) and print the trials table."""
    import time

    config = command_config(args, TuneConfig)  # validated before the slow TensorFlow import
    assert isinstance(config, TuneConfig)
    from sparse_ae.tuner import search
    from sparse_ae.tuning import format_trials_table

    dataset = config.dataset
    started = time.time()
    trials = search(
        config.model,
        config.tuner,
        dataset.tfds_name,
        args.output,
        data_dir=dataset.data_dir,
        download=dataset.download,
        train_split=dataset.split_for("train"),
        val_split=dataset.split_for("eval"),
    )
    took = time.time() - started
    print(
        f"\nTuning on {dataset.tfds_name}: {len(trials)} trials, {config.tuner.epochs_per_trial} epoch(s) each, "
        f"in {took:.0f} s"
    )
    print(format_trials_table(trials, config.tuner.sparsity_tolerance))
    print(f"wrote {os.path.join(args.output, TRIALS_FILE)}")
    return 0


def dataset_arguments(parser: argparse.ArgumentParser, example: str = SET_EXAMPLE) -> None:
    """--dataset (short for --set dataset.name=...), --set, and the replaced flags' pointers."""
    parser.add_argument(
        "--dataset",
        help=f"TFDS name[/config], short for --set dataset.name=NAME (default {DatasetConfig().name})",
    )
    add_set_argument(parser, example)
    parser.add_argument("--data-dir", action=Replaced, replacement="--set dataset.data_dir=DIR")
    parser.add_argument("--offline", action=Replaced, nargs=0, replacement="--set dataset.download=false")


def add_library_commands(subparsers) -> dict[str, Handler]:
    """Register prepare/train/reconstruct/tune; return the handler of each command name."""
    prepare = subparsers.add_parser("prepare", help="prepare a TFDS dataset (for offline or air-gapped use)")
    dataset_arguments(prepare, "dataset.data_dir=/shared/tfds")

    train = subparsers.add_parser("train", help="train the model standalone (no TFX)")
    dataset_arguments(train)
    train.add_argument("--epochs", action=Replaced, replacement="--set model.epochs=N")
    train.add_argument("--output", required=True, help="folder for weights, metrics.json and logs/")
    add_preset_argument(train)

    baseline = subparsers.add_parser(
        "baseline", help="the linear baseline: PCA of a code size, fitted on one split, PSNR on another"
    )
    dataset_arguments(baseline, "dataset.data_dir=tfds_data, model.latent_dim=16")
    baseline.add_argument(
        "--code-size",
        type=int,
        default=None,
        help=f"PCA components (default: model.latent_dim, {SparseAEConfig().latent_dim})",
    )
    baseline.add_argument("--fit-split", help="default: the TFDS split dataset.split_mapping maps to 'train'")
    baseline.add_argument("--eval-split", help="default: the TFDS split dataset.split_mapping maps to 'eval'")

    recon = subparsers.add_parser("reconstruct", help="write a grid of originals over reconstructions")
    dataset_arguments(recon)
    recon.add_argument("--weights", required=True, help="sparse_autoencoder.weights.h5 (a local path or gs://...)")
    recon.add_argument("--split", help="default: the TFDS split dataset.split_mapping maps to 'eval'")
    recon.add_argument("--count", type=int, default=10)
    recon.add_argument("--output", required=True, help="PNG file to write (a local path or gs://...)")

    tune = subparsers.add_parser(
        "tune", help="search sparsity_target, sparsity_weight and latent_dim standalone (no TFX)"
    )
    dataset_arguments(
        tune, "tuner.max_trials=6, tuner.sparsity_weight_range=0.01,1, model.epochs=3, dataset.download=false"
    )
    tune.add_argument("--output", default="tuning", help="folder for KerasTuner's trials and trials.json")
    return {
        "prepare": cmd_prepare,
        "train": cmd_train,
        "reconstruct": cmd_reconstruct,
        "baseline": cmd_baseline,
        "tune": cmd_tune,
    }


GLOBAL_FLAGS = ("--debug", "--verbose")  # accepted before or after the command


def hoist_global_flags(argv: Sequence[str]) -> list[str]:
    """argv with --debug and --verbose moved before the command, where the top-level parser takes them."""
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)  # after "--", every word is an operand
    flags = [arg for arg in argv[:end] if arg in GLOBAL_FLAGS]
    return flags + [arg for arg in argv[:end] if arg not in GLOBAL_FLAGS] + argv[end:]


def parser_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """A parser's options and subcommands (argparse has no public accessor for them)."""
    return parser._actions  # noqa: SLF001


def chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command's own parser that parsed args: `sparse-ae pipeline run`'s for `pipeline run`."""
    for action in parser_actions(parser):
        if isinstance(action.choices, dict):  # the subcommands: name -> parser
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return chosen_parser(chosen, args)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args, with a "did you mean --flag?" for a misspelt option of the chosen command."""
    args, unknown = parser.parse_known_args(hoist_global_flags(sys.argv[1:] if argv is None else argv))
    if unknown:
        command = chosen_parser(parser, args)
        options = [option for action in parser_actions(command) for option in action.option_strings]
        flags = [word.partition("=")[0] for word in unknown if word.startswith("-")]
        hints = "".join(did_you_mean(flag, options) for flag in flags[:1])
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hints}")
    return args


def run(
    parser: argparse.ArgumentParser,
    handlers: dict[str, Handler],
    argv: Sequence[str] | None,
    setup: Callable[[], None] = process.setup,
) -> int:
    """Parse, run the process setup, dispatch, and turn expected errors into one line on stderr.

    Bad input (config, dataset) exits with 2, a diverged training run with 1, with or without
    --debug (which adds the traceback). The setup runs after parsing: --help and bad arguments
    answer without importing TensorFlow.
    """
    args = parse(parser, argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    setup()
    try:
        return handlers[args.command](args)
    except (ConfigError, DatasetUnavailableError, DataValidationError, TrainingDivergedError) as error:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1 if isinstance(error, TrainingDivergedError) else 2


def make_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = OneLineErrorParser(prog="sparse-ae", description="Sparse autoencoder for images, with a TFX pipeline.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (implies --verbose)")
    # Read by main() before parsing (the quiet terminal starts before TensorFlow's import); here for --help.
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show every library's messages on the terminal (default: into a log file)",
    )
    subparsers = parser.add_subparsers(dest="command", parser_class=OneLineErrorParser)
    return parser, subparsers


def main(argv: Sequence[str] | None = None) -> int:
    parser, subparsers = make_parser()
    return run(parser, add_library_commands(subparsers), argv)
