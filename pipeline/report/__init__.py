"""The run report: one self-contained HTML page (PNGs beside it) per pipeline run, from ML Metadata.

    from pipeline.report import write_report
    path = write_report("pipeline_roots/demo")            # the latest run
    path = write_report(root, run_id="2026-...", output_dir="out/")

`gather` returns the report's content (`ReportData`, the numbers every figure draws) without writing.
This package's `__init__` stays light (no TensorFlow, numpy or ML Metadata at import: the command
line imports `pipeline.report.cli`), so it imports its content and rendering modules when called;
they never import this `__init__` back.
"""

from __future__ import annotations

import os
import re

REPORTS_DIR = "reports"


def report_dir(pipeline_root: str, run_id: str) -> str:
    """<pipeline_root>/reports/<run id>/, the run id made safe as a folder name (':' and the like -> '_').

    A remote root (gs://...) stays as it is: the report is written beside the run's artifacts.
    """
    root = pipeline_root if "://" in pipeline_root else os.path.abspath(pipeline_root)
    return os.path.join(root, REPORTS_DIR, re.sub(r"[^A-Za-z0-9._-]", "_", run_id))


def write_report(
    pipeline_root: str,
    run_id: str | None = None,
    output_dir: str | None = None,
    *,
    pipeline_name: str | None = None,
    metadata_path: str | None = None,
    summary=None,
) -> str:
    """Write the report of run_id (default: the latest run) and return the path of its report.html.

    Default output_dir: <pipeline_root>/reports/<run id>/. pipeline_name defaults to the store's only
    pipeline; metadata_path to <pipeline_root>/metadata.sqlite (pipeline_config.METADATA_FILE);
    `summary` (a RunSummary of that run) saves reading the evaluation twice. Raises ConfigError for an
    unknown root, pipeline or run.
    """
    from pipeline.report.content import gather
    from pipeline.report.render import write

    data = gather(pipeline_root, run_id, pipeline_name=pipeline_name, metadata_path=metadata_path, summary=summary)
    return write(data, output_dir or report_dir(pipeline_root, data.run_id))


def gather(*args, **kwargs):
    """See pipeline.report.content.gather: the report's content (ReportData) without writing it."""
    from pipeline.report.content import gather as gather_

    return gather_(*args, **kwargs)
