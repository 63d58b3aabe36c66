"""The `sparse-ae` command: the model library's commands plus `pipeline run`."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Sequence

# Keras 2 for TFX/TFMA: pipeline/process.py, set up after parsing. TensorFlow's C++ log lines and
# other library chatter: sparse_ae/quiet.py, set up in main() before the first TensorFlow import.
from pipeline import process
from pipeline.workspace import check_serving_dir, pipeline_config, pipeline_flags, remember
from sparse_ae import cli as library_cli
from sparse_ae import quiet


class ComponentProgress(logging.Filter):
    """Turns LocalDagRunner's 'Component X is running/finished' log records into progress lines on
    stdout; every other record passes (the terminal handler's level decides what shows)."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream  # None: sys.stdout when printing (bound late: tests swap sys.stdout)
        self.started: dict = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in ("Component %s is running.", "Component %s is finished.") and isinstance(record.args, tuple):
            node = record.args[0]
            clock = time.strftime("%H:%M:%S")
            if "running" in record.msg:
                self.started[node] = time.time()
                print(f"[{clock}] {node} started", file=self.stream or sys.stdout, flush=True)
            else:
                took = time.time() - self.started.get(node, time.time())
                print(f"[{clock}] {node} finished ({took:.1f} s)", file=self.stream or sys.stdout, flush=True)
            return False
        return True


def pipeline_config_from(args: argparse.Namespace, workspace: bool = True):
    """The PipelineConfig of `pipeline run`/`compile`: the preset's model, then (workspace) the project
    folder's settings file, then the flags and --set; the dataset's name checked against TFDS's
    builders before any work."""
    from sparse_ae.dataset_names import check_dataset_name
    from sparse_ae.presets import preset

    config = pipeline_config(args, library_cli.DATASET_ALIAS, {"model": preset(args.preset)}, workspace)
    check_dataset_name(config.dataset.name, config.dataset.data_dir)
    return config


def cmd_pipeline_run(args: argparse.Namespace) -> int:
    config = pipeline_config_from(args)  # validated before the slow TFX import
    check_serving_dir(config, args)  # a push into another folder than the pipeline's earlier ones is asked for
    from pipeline.run_lock import PipelineRootBusy, run_lock

    try:
        with run_lock(config):  # one run per pipeline root; a second is refused before the TFX import
            settings = remember(config)
            if settings:
                print(
                    f"Settings: {settings} now names this pipeline (root {config.pipeline_root}, serving "
                    f"{config.serving_dir}): the default of every sparse-ae command run in this folder"
                )
            return _run_and_report(config, args)
    except PipelineRootBusy as error:
        print(f"sparse-ae: error: {error}", file=sys.stderr)
        return 2


def _run_and_report(config, args: argparse.Namespace) -> int:
    """Run locally, print the summary from ML Metadata; 1 when a component failed."""
    import absl.logging

    from pipeline.local_runner import run_local
    from pipeline.run_summary import format_summary, summarize_run

    absl.logging.set_verbosity(absl.logging.INFO)  # TFX's records: progress lines, the rest into the log
    terminal = quiet.active()
    log_path = None
    if terminal is not None:
        terminal.terminal_handler.addFilter(ComponentProgress())
        # Named after the run once its id is known; until then after the start and this process
        # (two runs started in the same second each keep their own log).
        started_name = f"{time.strftime('%Y-%m-%dT%H_%M_%S')}-{os.getpid()}.log"
        log_path = terminal.attach(os.path.join(config.absolute().pipeline_root, LOGS_DIR, started_name))
    started = time.time()
    failure = None
    try:
        run_local(config)
    except Exception as error:  # noqa: BLE001  (any failed component: report the run, then fail)
        failure = error
    config = config.absolute()
    print(
        f"\nPipeline {config.pipeline_name} {'FAILED' if failure else 'finished'} in {time.time() - started:.0f} s "
        f"(root {config.pipeline_root})"
    )
    summary = None
    try:
        summary = summarize_run(config.resolved_metadata_path, config.pipeline_name)
        print(format_summary(summary))
    except LookupError as error:
        print(f"no run recorded: {error}")
    if summary is not None:
        from pipeline.report.cli import report_after_run

        report_after_run(config, summary)  # prints the report's path, or a warning; never fails the run
        if log_path and terminal is not None:  # named after the run, like its report folder
            log_path = terminal.rename(os.path.join(config.pipeline_root, LOGS_DIR, run_file_name(summary.run_id)))
    if log_path:
        print(f"Log: {log_path} (library messages; --verbose shows them on the terminal)")
    if failure is not None:
        if args.debug:
            raise failure
        from pipeline.failures import failure_message

        print(failure_message(failure), file=sys.stderr)  # one line; --debug shows the traceback
        return 1
    return 0


LOGS_DIR = "logs"  # <pipeline_root>/logs/<run id>.log: each run's library messages (quiet terminal)


def run_file_name(run_id: str) -> str:
    """<run id>.log, the run id made safe as a file name as for the run's report folder."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id) + ".log"


def add_pipeline_commands(subparsers) -> dict:
    pipeline = subparsers.add_parser("pipeline", help="the TFX pipeline")
    actions = pipeline.add_subparsers(dest="pipeline_command", required=True, parser_class=type(pipeline))
    run = actions.add_parser(
        "run",
        help="run the whole pipeline locally (LocalDagRunner, sqlite ML Metadata)",
        parents=[pipeline_flags("model.sparsity_target=0.02, gate.psnr_threshold=20")],
    )
    run.add_argument("--dataset", help="TFDS name[/config], short for --set dataset.name=NAME")
    library_cli.add_preset_argument(run)
    compile_ = actions.add_parser(
        "compile",
        help="compile for another orchestrator: a Kubeflow/Vertex spec or an Airflow DAG file",
        parents=[pipeline_flags("container_image=REGISTRY/sparse-ae-tfx:TAG")],
    )
    compile_.add_argument("--runner", required=True, choices=["kubeflow", "airflow"])
    compile_.add_argument(
        "--output",
        required=True,
        help="kubeflow: the spec FILE.json; airflow: the dags_folder (or a FILE.py)",
    )
    compile_.add_argument("--dataset", help="TFDS name[/config], short for --set dataset.name=NAME")
    compile_.add_argument(
        "--allow-local",
        action="store_true",
        help="kubeflow: compile even with local paths, an image in no registry or a dataset downloaded by every "
        "run (a spec only a cluster that sees this machine's paths and images can run)",
    )
    library_cli.add_preset_argument(compile_)
    return {
        "pipeline": lambda args: {"run": cmd_pipeline_run, "compile": cmd_pipeline_compile}[args.pipeline_command](args)
    }


def cmd_pipeline_compile(args: argparse.Namespace) -> int:
    """Write the same pipeline as a Kubeflow V2 spec (Vertex AI Pipelines runs it) or an Airflow DAG module."""
    config = pipeline_config_from(args, workspace=False)  # the orchestrator's roots, not this folder's
    if args.runner == "kubeflow":
        from pipeline.kubeflow_runner import TARGET, compile_kubeflow, kubeflow_changes, kubeflow_ready

        path = compile_kubeflow(config, args.output, allow_local=args.allow_local)
        ready = kubeflow_ready(config)
        print(
            f"Kubeflow V2 pipeline spec written to {path} (pipeline {ready.pipeline_name}, "
            f"image {config.container_image}, baseline {ready.gate.baseline})\n{TARGET}\n"
            "Different from a local run (sparse-ae pipeline run):"
        )
        for change in kubeflow_changes(config):
            print(f"  - {change}")
    else:
        from pipeline.airflow_runner import write_dag_file

        path = write_dag_file(config, args.output)
        print(f"Airflow DAG {config.pipeline_name} written to {path} (schedule {config.airflow.schedule})")
    return 0


def run_benchmarks(args: argparse.Namespace) -> int:
    """`sparse-ae bench`: the benchmarks of a source checkout (the Docker image leaves benchmarks/ out)."""
    from sparse_ae.errors import ConfigError

    try:
        from benchmarks.run import main as bench_main  # the only import of benchmarks/ by the command line
    except ModuleNotFoundError as error:
        if error.name not in ("benchmarks", "benchmarks.run"):
            raise
        raise ConfigError(
            "`sparse-ae bench` needs the benchmarks/ folder of a source checkout, which this "
            "installation lacks (the Docker image leaves it out)"
        ) from None
    return bench_main(args.bench_args)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, library_cli.Handler]]:
    """The whole `sparse-ae` parser and each command's handler; light (no TensorFlow, no TFX), so that
    tests/test_docs.py can parse every documented command without running it."""
    parser, subparsers = library_cli.make_parser()
    handlers = library_cli.add_library_commands(subparsers)
    handlers.update(add_pipeline_commands(subparsers))
    bench = subparsers.add_parser("bench", help="run the benchmarks (see `sparse-ae bench --help`)", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    handlers["bench"] = run_benchmarks
    from pipeline.promotion_cli import add_promotion_commands  # models, promote, rollback (issue 9)

    handlers.update(add_promotion_commands(subparsers))
    from pipeline.report.cli import add_report_command  # report (the run report)

    handlers.update(add_report_command(subparsers))
    from pipeline.score_cli import add_score_command  # score (issue 16)

    handlers.update(add_score_command(subparsers))
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv or "--debug" in argv  # accepted before or after the command (library_cli.run)
    with quiet.QuietTerminal(verbose) as terminal:  # before the first TensorFlow import
        parser, handlers = build_parser()
        status = library_cli.run(parser, handlers, argv, setup=process.setup)
        terminal.failed = status not in (0, 2)  # 2: bad input, said in one line
    return status


if __name__ == "__main__":
    sys.exit(main())
