"""`sparse-ae score`: anomaly scores, flags and latent codes of new images from a pushed model."""
from __future__ import annotations

import argparse
import os
from typing import Callable, Dict


def cmd_score(args: argparse.Namespace) -> int:
    from sparse_ae.errors import ConfigError

    if args.model_dir:
        model_dir = args.model_dir
    else:
        from pipeline_config import load_config

        overrides = list(args.set or []) + ([f"serving_dir={args.serving_dir}"] if args.serving_dir else [])
        serving_dir = load_config(overrides).absolute().serving_dir
        from sparse_ae.scoring import resolve_model_dir

        model_dir = resolve_model_dir(serving_dir, args.version)
    if not args.output.lower().endswith((".csv", ".parquet", ".pq")):
        raise ConfigError(f"--output {args.output!r}: name a .csv or .parquet file")
    from sparse_ae import scoring

    scorer = scoring.Scorer(model_dir)
    shape = scorer.image_shape
    if args.dataset:
        batches, total = scoring.tfds_batches(args.dataset, args.split, shape, args.data_dir,
                                              download=not args.offline, batch_size=args.batch_size)
        source = f"TFDS {args.dataset} split {args.split}"
    elif args.images:
        batches, total = scoring.folder_batches(args.images, shape, args.batch_size)
        source = f"images in {args.images}"
    else:
        batches, total = scoring.example_batches(args.examples, shape, args.batch_size)
        source = f"tf.Examples {args.examples}"
    stem = os.path.splitext(args.output)[0]
    summary = scoring.score(scorer, batches, args.output, source, total=total, threshold=args.threshold,
                            with_latent=args.latent, worst_png=None if args.no_plot else f"{stem}_worst.png",
                            strict=args.strict, progress=not args.quiet)
    scoring.write_summary(summary, f"{stem}_summary.json")
    print(summary.format())
    print(f"Summary: {stem}_summary.json")
    return 0


def add_score_command(subparsers) -> Dict[str, Callable[[argparse.Namespace], int]]:
    """Register `score`; return its handler."""
    score = subparsers.add_parser(
        "score", help="score images with a pushed model: per-image MSE, PSNR, anomaly flag (and latent code)")
    source = score.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="TFDS name[/config] (with --split, --data-dir)")
    source.add_argument("--images", metavar="FOLDER", help="a folder of PNG/JPEG files")
    source.add_argument("--examples", metavar="PATTERN",
                        help="TFRecords of tf.Examples as the pipeline writes them (a glob or a folder; .gz: gzipped)")
    score.add_argument("--split", default="test", help="TFDS split (default %(default)s)")
    score.add_argument("--data-dir", default=None, help="TFDS data_dir")
    score.add_argument("--offline", action="store_true", help="never prepare the TFDS dataset")
    which = score.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="a version in serving_dir (default: the live one, the highest)")
    which.add_argument("--model-dir", help="a SavedModel folder instead of serving_dir's versions")
    score.add_argument("--serving-dir", help="sets serving_dir (default: the pipeline config's)")
    score.add_argument("--set", action="append", metavar="KEY=VALUE", help="pipeline config override, repeatable")
    score.add_argument("--output", required=True, help="FILE.csv or FILE.parquet: one row per image; the summary "
                                                       "(FILE_summary.json) and worst reconstructions (FILE_worst.png) "
                                                       "go beside it")
    score.add_argument("--threshold", type=float, help="flag MSE above this instead of the model's calibration")
    score.add_argument("--latent", action="store_true", help="add the latent code (latent_0, latent_1, ...)")
    score.add_argument("--strict", action="store_true", help="stop at the first image the model cannot take")
    score.add_argument("--batch-size", type=int, default=256)
    score.add_argument("--no-plot", action="store_true", help="skip the PNG of the worst reconstructions")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    return {"score": cmd_score}
