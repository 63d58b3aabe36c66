"""`sparse-ae report --pipeline-root DIR [--run RUN_ID] [--output DIR]`, and the report after `pipeline run`."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

from pipeline.workspace import pipeline_config, pipeline_flags


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the report of a recorded run from ML Metadata; print its path."""
    from sparse_ae.config import command_overrides

    config = pipeline_config(args).absolute()  # validated before the slow imports
    named = "pipeline_name" in command_overrides(args)
    from pipeline.mlmd_reader import metadata_file, resolve_run
    from pipeline.report import write_report

    metadata_file(config.pipeline_root, config.metadata_path)  # no such root: one line, before the slow imports

    # Unknown root, pipeline or run: a ConfigError (one line, exit 2) before any figure is drawn.
    resolve_run(config.pipeline_root, args.run, config.pipeline_name if named else None, config.metadata_path)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # TFMA's deprecation warnings on loading metrics
    print(
        write_report(
            config.pipeline_root,
            args.run,
            args.output,
            pipeline_name=config.pipeline_name if named else None,
            metadata_path=config.metadata_path,
        )
    )
    return 0


def report_after_run(config, summary) -> None:
    """Write the report of the run just summarized and print its path; never fails the run (a warning line)."""
    started = time.time()
    try:
        from pipeline.report import write_report

        path = write_report(
            config.pipeline_root,
            summary.run_id,
            pipeline_name=config.pipeline_name,
            metadata_path=config.resolved_metadata_path,
            summary=summary,
        )
    except Exception as error:  # noqa: BLE001  (the run's outcome stands whatever happens here)
        reason = str(error).splitlines()[0] if str(error) else ""
        print(f"warning: run report not written: {type(error).__name__}: {reason}")
        return
    print(f"Report: {path} ({time.time() - started:.1f} s)")


def add_report_command(subparsers) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Register `report`; return its handler."""
    report = subparsers.add_parser(
        "report",
        help="write the HTML report of a recorded pipeline run (from ML Metadata) and print its path",
        parents=[pipeline_flags("pipeline_name=NAME, metadata_path=FILE")],
    )
    report.add_argument("--run", metavar="RUN_ID", help="the pipeline run id (default: the latest run)")
    report.add_argument(
        "--output", metavar="DIR", help="folder to write into (default: <pipeline_root>/reports/<run>/)"
    )
    return {"report": cmd_report}
