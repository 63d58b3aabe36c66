"""The model library's commands: prepare, train, reconstruct (no TFX involved)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Dict, Optional, Sequence

from sparse_ae.config import SparseAEConfig, build_config, merge, parse_overrides
from sparse_ae.errors import ConfigError, DatasetUnavailableError, DataValidationError, TrainingDivergedError

Handler = Callable[[argparse.Namespace], int]


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad arguments end with one line on stderr and exit status 2, without the usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def model_config_from(args: argparse.Namespace, base: Optional[dict] = None) -> SparseAEConfig:
    """Defaults (or base), then --epochs, then --set overrides, validated."""
    values = dict(base or {})
    if getattr(args, "epochs", None) is not None:
        values["epochs"] = args.epochs
    return build_config(SparseAEConfig, merge(values, parse_overrides(args.set or [])))


def cmd_prepare(args: argparse.Namespace) -> int:
    from sparse_ae.data import tfds_builder

    builder = tfds_builder(args.dataset, data_dir=args.data_dir, download=True)
    print(f"{args.dataset} prepared in {builder.data_dir}")
    return 0


def add_preset_argument(parser: argparse.ArgumentParser) -> None:
    from sparse_ae.presets import PRESETS

    parser.add_argument("--preset", default="default", choices=sorted(PRESETS),
                        help="named model settings under the --set overrides: default, or seed (the seed "
                             "project's configuration; see docs/model-defaults.md)")


def cmd_train(args: argparse.Namespace) -> int:
    from sparse_ae.presets import preset

    config = model_config_from(args, preset(args.preset))  # validated before the slow TensorFlow import
    from sparse_ae.train import METRICS_FILE, WEIGHTS_FILE, train

    summary = train(config, args.dataset, args.output, data_dir=args.data_dir, download=not args.offline)
    print(f"best epoch {summary['best_epoch']} of {summary['epochs_run']} (val_loss {summary['best_val_loss']:.5f}): "
          f"val_psnr {summary['best_val_psnr']:.2f} dB, val_kl_penalty {summary['best_val_kl_penalty']:.4f}, "
          f"mean activation {summary['best_val_mean_activation']:.4f} (sparsity_target {config.sparsity_target})")
    linear = summary["linear_baseline"]
    print(f"linear baseline on {args.dataset}: PCA-{linear['code_size']} val_psnr {linear['eval_psnr']:.2f} dB; "
          f"the model {summary['best_val_psnr'] - linear['eval_psnr']:+.2f} dB")
    print(f"wrote {os.path.join(args.output, WEIGHTS_FILE)} and {os.path.join(args.output, METRICS_FILE)}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import numpy as np

    from sparse_ae.data import load_images
    from sparse_ae.inference import load_model, reconstruct, to_uint8
    from sparse_ae.plots import save_reconstruction_grid
    from sparse_ae.train import METRICS_FILE

    # The architecture comes from the metrics.json written beside the weights, when present.
    recorded = os.path.join(os.path.dirname(os.path.abspath(args.weights)), METRICS_FILE)
    base = json.load(open(recorded))["config"] if os.path.exists(recorded) else {}
    if not os.path.exists(args.weights):
        raise ConfigError(f"--weights {args.weights!r}: no such file")
    config = model_config_from(args, base)
    images = np.stack(list(load_images(args.dataset, args.split, args.data_dir, not args.offline)
                           .take(args.count).as_numpy_iterator()))
    model = load_model(args.weights, config)
    save_reconstruction_grid(images, to_uint8(reconstruct(model, images)), args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from sparse_ae.linear_baseline import compute

    if args.code_size <= 0:
        raise ConfigError(f"--code-size {args.code_size}: must be > 0")
    try:
        result = compute(args.dataset, args.fit_split, args.eval_split, args.code_size, data_dir=args.data_dir,
                         download=not args.offline)
    except ValueError as error:  # a code size beyond the pixel count, an empty split
        raise ConfigError(str(error)) from None
    print(f"{args.dataset}: PCA-{result['code_size']} (fitted on {args.fit_split}, {result['fitted_on_images']} "
          f"images) eval PSNR on {args.eval_split} ({result['eval_images']} images) {result['eval_psnr']:.2f} dB, "
          f"MSE {result['eval_mse']:.5f}")
    return 0


def _dataset_arguments(parser: argparse.ArgumentParser, default: str = "fashion_mnist") -> None:
    parser.add_argument("--dataset", default=default, help="TFDS name[/config][:version] (default %(default)s)")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir (default: TFDS's own)")
    parser.add_argument("--offline", action="store_true", help="never download; fail if not prepared")


def add_library_commands(subparsers) -> Dict[str, Handler]:
    """Register prepare/train/reconstruct/tune; return the handler of each command name."""
    prepare = subparsers.add_parser("prepare", help="prepare a TFDS dataset (for offline or air-gapped use)")
    prepare.add_argument("--dataset", required=True)
    prepare.add_argument("--data-dir", default=None)

    train = subparsers.add_parser("train", help="train the model standalone (no TFX)")
    _dataset_arguments(train)
    train.add_argument("--epochs", type=int, default=None, help="overrides the config's epochs")
    train.add_argument("--output", required=True, help="folder for weights, metrics.json and logs/")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, repeatable")
    add_preset_argument(train)

    baseline = subparsers.add_parser(
        "baseline", help="the linear baseline: PCA of a code size, fitted on one split, PSNR on another")
    _dataset_arguments(baseline)
    baseline.add_argument("--code-size", type=int, default=SparseAEConfig().latent_dim,
                          help="PCA components, the model's latent_dim (default %(default)s)")
    baseline.add_argument("--fit-split", default="train")
    baseline.add_argument("--eval-split", default="test")

    recon = subparsers.add_parser("reconstruct", help="write a grid of originals over reconstructions")
    _dataset_arguments(recon)
    recon.add_argument("--weights", required=True, help="sparse_autoencoder.weights.h5")
    recon.add_argument("--split", default="test")
    recon.add_argument("--count", type=int, default=10)
    recon.add_argument("--output", required=True, help="PNG file to write")
    recon.add_argument("--set", action="append", metavar="KEY=VALUE")
    from sparse_ae.tuning import add_tune_command  # tune (issue 8)

    return {"prepare": cmd_prepare, "train": cmd_train, "reconstruct": cmd_reconstruct, "baseline": cmd_baseline,
            **add_tune_command(subparsers)}


def run(parser: argparse.ArgumentParser, handlers: Dict[str, Handler], argv: Optional[Sequence[str]]) -> int:
    """Parse, dispatch, and turn expected errors into one line on stderr.

    Bad input (config, dataset) exits with 2, a diverged training run with 1.
    """
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return handlers[args.command](args)
    except (ConfigError, DatasetUnavailableError, DataValidationError, TrainingDivergedError) as error:
        if getattr(args, "debug", False):
            raise
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1 if isinstance(error, TrainingDivergedError) else 2


def make_parser() -> tuple[argparse.ArgumentParser, "argparse._SubParsersAction"]:
    parser = OneLineErrorParser(prog="sparse-ae", description="Sparse autoencoder for images, with a TFX pipeline.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (implies --verbose)")
    # Read by main() before parsing (the quiet terminal starts before TensorFlow's import); here for --help.
    parser.add_argument("--verbose", action="store_true",
                        help="show every library's messages on the terminal (default: into a log file)")
    subparsers = parser.add_subparsers(dest="command", parser_class=OneLineErrorParser)
    return parser, subparsers


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser, subparsers = make_parser()
    return run(parser, add_library_commands(subparsers), argv)
