"""The Beam options each Beam-based component (ExampleGen, StatisticsGen, Evaluator) runs with,
and, unless beam_pipeline_args sets them, the DirectRunner mode a local run chooses for the data
and the machine.

A compiled pipeline (Kubeflow spec, Airflow DAG) carries only what the config says
(`beam_pipeline_args`). A local run chooses the mode when it starts (`beam_mode`) and hands it to
the Beam components through two environment-variable placeholders (`local_beam_pipeline_args`,
`mode_environment`): TFX resolves them as each component starts, and its cache key hashes the
placeholders, not their values, so the machine (its cores, whether the dataset was prepared) never
decides whether a component runs again.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

from pipeline_config import BEAM_RUNNER_TEMPLATES, DatasetConfig, PipelineConfig

if TYPE_CHECKING:
    from tfx.dsl.placeholder.placeholder import Placeholder

# TFX builds and stages an sdist of itself for the Beam workers unless one of these is set.
_DEPENDENCY_FLAGS = (
    "--extra_package",
    "--extra_packages",
    "--setup_file",
    "--requirements_file",
    "--worker_harness_container_image",
    "--sdk_container_image",
)

# The DirectRunner's two modes. multi_processing starts one worker process per core in every Beam
# component (ExampleGen, StatisticsGen, Evaluator), and each worker imports TensorFlow, TFX and TFMA
# again: WORKER_START_S of wall time per component before the first example, which the parallel work
# must win back. Per component, multi-processing pays when
#     examples * EXAMPLE_COST_S * (1 - 1/cores) > WORKER_START_S
# (the parallel gain taken as ideal, which favours multi-processing). Measured on this project's
# 2-core machines on two days, S/c = 160,000-200,000 examples both days (docs/benchmarks.md, "Beam
# running mode"). Break-even: about 330,000 examples on 2 cores, 180,000 on 16.
WORKER_START_S = 25.0
EXAMPLE_COST_S = 150e-6
UNKNOWN_SIZE = "in_memory"  # a dataset not prepared yet (ExampleGen prepares it): size unknown
SET_BY_CONFIG = "set by beam_pipeline_args"  # the reason of a mode the config sets (not chosen)
# Where a local run records its mode and why, for the run summary: a custom property of the run's
# pipeline_run context in ML Metadata (never a component's property, which would be in its cache key).
BEAM_MODE_PROPERTY = "beam_mode"


@dataclasses.dataclass(frozen=True)
class BeamMode:
    """The Beam options of a run, which mode they mean and why they were chosen."""

    args: list[str]
    mode: str  # in_memory | multi_processing | the runner (DataflowRunner, ...)
    reason: str

    def describe(self) -> str:
        """One line for the run summary."""
        return f"{self.mode} ({self.reason})"


def break_even_examples(cores: int) -> int | None:
    """The dataset size from which multi-processing beats in-memory on `cores` cores (None: never)."""
    if cores < 2:
        return None
    return int(WORKER_START_S / (EXAMPLE_COST_S * (1 - 1 / cores)))


def choose_direct_mode(num_examples: int | None, cores: int | None) -> BeamMode:
    """in_memory or multi_processing for a dataset of num_examples (None: unknown) on `cores` cores."""
    cores = cores or 1
    threshold = break_even_examples(cores)
    if threshold is None:
        mode, reason = "in_memory", "1 core: no parallel work to gain"
    elif num_examples is None:
        mode, reason = UNKNOWN_SIZE, f"dataset size unknown (not prepared yet); {cores} cores"
    elif num_examples >= threshold:
        mode, reason = (
            "multi_processing",
            f"{num_examples:,} examples >= {threshold:,}, the break-even on {cores} cores",
        )
    else:
        mode, reason = (
            "in_memory",
            f"{num_examples:,} examples < {threshold:,}, the break-even on {cores} cores",
        )
    return BeamMode(list(BEAM_RUNNER_TEMPLATES[f"direct_{mode}"]), mode, f"chosen: {reason}")


def prepared_size(dataset: DatasetConfig) -> int | None:
    """Examples in the mapped splits of a prepared TFDS dataset; None when unknown (not prepared,
    on remote storage, unknown name, or no split sizes, as under tfds.testing.mock_data)."""
    import tensorflow_datasets as tfds

    from sparse_ae import datasets as _registered  # noqa: F401  (registers garment_shapes)

    if dataset.data_dir and "://" in dataset.data_dir:
        return None  # remote storage (gs://...): not read while the pipeline is being built
    name = f"{dataset.name}:{dataset.version}" if dataset.version else dataset.name
    try:
        builder = tfds.builder(name, data_dir=dataset.data_dir, try_gcs=False)
        if not builder.is_prepared():
            return None
        return sum(builder.info.splits[split].num_examples for split in dataset.split_mapping)
    except Exception:  # noqa: BLE001  (unknown dataset or split, whatever TFDS raises: ExampleGen reports it)
        return None


# Beam's DirectRunner (2.68 and later) first tries the Prism runner, which it downloads from GitHub:
# where that works, the chosen mode (direct_running_mode, direct_num_workers) is ignored; where it
# cannot (no network), each Beam component loses a second or two before falling back. Beam's
# maintainers' advice is to name the FnApiRunner, the DirectRunner's own engine for these pipelines.
LOCAL_RUNNER = "--runner=FnApiRunner"
_DIRECT_RUNNERS = ("directrunner", "direct", "fnapirunner", "fnapi")


def _named_runner(args: list[str]) -> str | None:
    """The runner args name (the last one wins, as in Beam), or None."""
    runner = None
    for index, arg in enumerate(args):
        if arg.startswith("--runner="):
            runner = arg.split("=", 1)[1]
        elif arg == "--runner" and index + 1 < len(args):
            runner = args[index + 1]
    return runner


def _runner(args: list[str]) -> str:
    return _named_runner(args) or "DirectRunner"  # Beam's default


def _is_direct(args: list[str]) -> bool:
    return _runner(args).lower() in _DIRECT_RUNNERS


def beam_mode(config: PipelineConfig, cores: int | None = None) -> BeamMode:
    """config.beam_pipeline_args when set; else the DirectRunner mode for the dataset's size and
    the cores of this machine (`cores`, default os.cpu_count()). For a local run, when it starts."""
    args = config.beam_pipeline_args
    if args is None:
        return choose_direct_mode(prepared_size(config.dataset), cores or os.cpu_count())
    mode = _runner(args)
    if _is_direct(args):
        modes = [arg.split("=", 1)[1] for arg in args if arg.startswith("--direct_running_mode=")]
        mode = modes[-1] if modes else "in_memory"  # Beam's default running mode
    return BeamMode(list(args), mode, SET_BY_CONFIG)


def beam_pipeline_args(config: PipelineConfig) -> list[str]:
    """The Beam options of the config (none: Beam's defaults, the FnApiRunner in memory); where
    they name no runner, the FnApiRunner (see LOCAL_RUNNER); and for these local runners the
    container image as the workers' dependency flag. Nothing here depends on this machine.

    Without a dependency flag, every Beam executor copies TFX's 41 MB source into a new temporary
    directory and builds a package from it (seconds per component, never deleted: gigabytes of
    /tmp after a few dozen runs). The DirectRunner's workers share this Python environment and
    never install it, so the flag only tells TFX that nothing needs staging; the image named is
    the one every step already runs in on Kubeflow (config.container_image).
    """
    args = list(config.beam_pipeline_args or [])
    if _named_runner(args) is None:
        args.append(LOCAL_RUNNER)
    has_dependency = any(arg.split("=", 1)[0] in _DEPENDENCY_FLAGS for arg in args)
    if _is_direct(args) and not has_dependency:
        args.append(f"--sdk_container_image={config.container_image}")
    return args


# The DirectRunner options a local run chooses (BEAM_RUNNER_TEMPLATES' direct_* entries), each
# read from an environment variable that the local runner sets for the run (mode_environment).
_CHOSEN_OPTIONS = {
    "--direct_running_mode": "SPARSE_AE_DIRECT_RUNNING_MODE",
    "--direct_num_workers": "SPARSE_AE_DIRECT_NUM_WORKERS",
}


def local_beam_pipeline_args(config: PipelineConfig) -> list[str | Placeholder]:
    """beam_pipeline_args(config), and where the config sets none, the DirectRunner options as
    placeholders of the mode the run chooses when it starts (filled by mode_environment)."""
    from tfx.dsl.placeholder import placeholder as ph

    chosen: list[str | Placeholder] = []
    if config.beam_pipeline_args is None:
        chosen = [f"{option}=" + ph.environment_variable(variable) for option, variable in _CHOSEN_OPTIONS.items()]
    return chosen + beam_pipeline_args(config)


def mode_environment(mode: BeamMode) -> dict[str, str]:
    """The environment variables local_beam_pipeline_args's placeholders read, for mode (a
    chosen DirectRunner mode; none for options the config sets itself)."""
    if mode.reason == SET_BY_CONFIG:
        return {}
    options = dict(arg.split("=", 1) for arg in mode.args)
    return {variable: options[option] for option, variable in _CHOSEN_OPTIONS.items()}
