"""`sparse-ae score`: anomaly scores, flags and latent codes of new images from a pushed model."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pipeline.workspace import check_serving_dir, pipeline_config, pipeline_flags
from sparse_ae.cli import Replaced


def cmd_score(args: argparse.Namespace) -> int:
    from sparse_ae.errors import ConfigError

    config = pipeline_config(args, {"dataset": "dataset.name"}).absolute()
    if args.dataset:
        from sparse_ae.dataset_names import check_dataset_name

        check_dataset_name(config.dataset.name, config.dataset.data_dir)  # before the model is looked up or loaded
    if args.model_dir:
        model_dir = args.model_dir
    else:
        check_serving_dir(config, args)
        from sparse_ae.scoring import resolve_model_dir

        model_dir = resolve_model_dir(config.serving_dir, args.version)
    if not args.output.lower().endswith((".csv", ".parquet", ".pq")):
        raise ConfigError(f"--output {args.output!r}: name a .csv or .parquet file")
    from sparse_ae import scoring

    scorer = scoring.Scorer(model_dir)
    shape = scorer.image_shape
    if args.dataset:
        dataset = config.dataset
        split = args.split or dataset.split_for("eval")
        batches, total = scoring.tfds_batches(
            dataset.tfds_name,
            split,
            shape,
            dataset.data_dir,
            download=dataset.download,
            batch_size=args.batch_size,
        )
        source = f"TFDS {dataset.tfds_name} split {split}"
    elif args.images:
        batches, total = scoring.folder_batches(args.images, shape, args.batch_size)
        source = f"images in {args.images}"
    else:
        batches, total = scoring.example_batches(args.examples, shape, args.batch_size)
        source = f"tf.Examples {args.examples}"
    summary_path, worst_path = scoring.companion_paths(args.output)
    summary = scoring.score(
        scorer,
        batches,
        args.output,
        source,
        total=total,
        threshold=args.threshold,
        with_latent=args.latent,
        worst_png=None if args.no_plot else worst_path,
        strict=args.strict,
        progress=not args.quiet,
    )
    scoring.write_summary(summary, summary_path)
    print(summary.format())
    print(f"Summary: {summary_path}")
    return 0


def add_score_command(subparsers) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Register `score`; return its handler."""
    score = subparsers.add_parser(
        "score",
        help="score images with a pushed model: per-image MSE, PSNR, anomaly flag (and latent code)",
        parents=[pipeline_flags("dataset.data_dir=tfds_data, dataset.download=false, serving_dir=DIR")],
    )
    source = score.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--dataset",
        help="TFDS name[/config], short for --set dataset.name=NAME (with --split; "
        "dataset.data_dir and dataset.download apply)",
    )
    source.add_argument("--images", metavar="FOLDER", help="a folder of PNG/JPEG files")
    source.add_argument(
        "--examples",
        metavar="PATTERN",
        help="TFRecords of tf.Examples as the pipeline writes them (a glob or a folder; .gz: gzipped)",
    )
    score.add_argument("--split", help="TFDS split (default: the one dataset.split_mapping maps to 'eval')")
    score.add_argument("--data-dir", action=Replaced, replacement="--set dataset.data_dir=DIR")
    score.add_argument("--offline", action=Replaced, nargs=0, replacement="--set dataset.download=false")
    which = score.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="a version in serving_dir (default: the live one, the highest)")
    which.add_argument("--model-dir", help="a SavedModel folder instead of serving_dir's versions")
    score.add_argument(
        "--output",
        required=True,
        help="FILE.csv or FILE.parquet: one row per image; the summary "
        "(FILE.csv.summary.json) and worst reconstructions (FILE.csv.worst.png) "
        "go beside it",
    )
    score.add_argument("--threshold", type=float, help="flag MSE above this instead of the model's calibration")
    score.add_argument("--latent", action="store_true", help="add the latent code (latent_0, latent_1, ...)")
    score.add_argument("--strict", action="store_true", help="stop at the first image the model cannot take")
    score.add_argument("--batch-size", type=int, default=256)
    score.add_argument("--no-plot", action="store_true", help="skip the PNG of the worst reconstructions")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    return {"score": cmd_score}
