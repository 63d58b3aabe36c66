"""The Beam options each Beam-based component (ExampleGen, StatisticsGen, Evaluator) runs with."""
from __future__ import annotations

from typing import List

from pipeline_config import PipelineConfig

# TFX builds and stages an sdist of itself for the Beam workers unless one of these is set.
_DEPENDENCY_FLAGS = ("--extra_package", "--extra_packages", "--setup_file", "--requirements_file",
                     "--worker_harness_container_image", "--sdk_container_image")


def _runner(args: List[str]) -> str:
    runner = "DirectRunner"
    for index, arg in enumerate(args):
        if arg.startswith("--runner="):
            runner = arg.split("=", 1)[1]
        elif arg == "--runner" and index + 1 < len(args):
            runner = args[index + 1]
    return runner


def beam_pipeline_args(config: PipelineConfig) -> List[str]:
    """config.beam_pipeline_args, plus, for the DirectRunner, the container image as the workers'
    dependency flag.

    Without a dependency flag, every Beam executor copies TFX's 41 MB source into a new temporary
    directory and builds a package from it (seconds per component, never deleted: gigabytes of
    /tmp after a few dozen runs). The DirectRunner's workers share this Python environment and
    never install it, so the flag only tells TFX that nothing needs staging; the image named is
    the one every step already runs in on Kubeflow (config.container_image).
    """
    args = list(config.beam_pipeline_args)
    direct = _runner(args).lower() in ("directrunner", "direct")
    has_dependency = any(arg.split("=", 1)[0] in _DEPENDENCY_FLAGS for arg in args)
    if direct and not has_dependency:
        args.append(f"--sdk_container_image={config.container_image}")
    return args
