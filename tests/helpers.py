"""Helpers shared by the test modules (imported as `from helpers import ...`; pytest puts tests/ on
sys.path). Fixtures live in conftest.py; plain functions and constants live here."""

import hashlib
import importlib.util
import os
import subprocess
import sys

# The installed console script, run as a user runs it.
CLI = os.path.join(os.path.dirname(sys.executable), "sparse-ae")

# The container tasks of the compiled Kubeflow V2 spec (node ids; the baseline's resolver tasks aside).
KUBEFLOW_COMPONENTS = frozenset(
    {"TFDSExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "Evaluator", "ServingPusher"}
)

# A gate every trained model passes: for tests about faults, not about quality.
LENIENT_GATE = ["gate.psnr_threshold=5", "gate.change_tolerance=100"]


def check_docs_module():
    """scripts/check_docs.py as a module (scripts/ is not a package): the checker of documented and quoted commands."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "check_docs.py")
    spec = importlib.util.spec_from_file_location("check_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def user_env() -> dict:
    """This process's environment without the TF_* settings the tests add (conftest quiets
    TensorFlow's C++ logs): what a user's shell gives the `sparse-ae` command."""
    return {key: value for key, value in os.environ.items() if not key.startswith("TF_")}


def set_args(overrides) -> list:
    """--set KEY=VALUE for each override, as the command line takes them."""
    return [arg for item in overrides for arg in ("--set", item)]


def run_cli(*args: str, cwd: str | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """`sparse-ae *args` in a fresh process with the user's environment; output captured."""
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=user_env(), cwd=cwd)


def small_pipeline_overrides(root, data_dir: str, epochs: int = 1) -> list:
    """--set overrides for a fast pipeline on garment_shapes/small under root, fully offline.

    Beam's mode is left to the pipeline's choice: in-memory for 2,500 examples on any machine
    (pipeline/beam_args.py), so the choice is exercised and the runs stay fast. No sparsity or
    linear-baseline check: a code of one or three epochs on 2,000 images has not settled its
    sparsity per image nor caught up with PCA (tests/test_quality_gate.py sets them).
    """
    return [
        f"pipeline_root={root}/root",
        f"serving_dir={root}/serving",
        "dataset.name=garment_shapes/small",
        f"dataset.data_dir={data_dir}",
        "dataset.download=false",
        f"model.epochs={epochs}",
        "gate.min_gain_over_linear=none",
        "gate.max_zeroing_cost=none",
        "gate.min_hoyer=none",
        "gate.max_active_units=none",
    ]


def file_digests(path: str) -> dict:
    """Every file under path (hidden ones included) -> sha256 of its bytes: a tree to compare
    before and after a fault."""
    found = {}
    for folder, _, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            with open(full, "rb") as handle:
                found[os.path.relpath(full, path)] = hashlib.sha256(handle.read()).hexdigest()
    return found


def served_pipeline_root(root: str, data_dir: str):
    """(overrides, absolute config) of a small pipeline root under root whose first run, in this
    process, has already pushed a model: the state a fault must leave alone."""
    from pipeline.local_runner import run_local
    from pipeline_config import load_config

    overrides = small_pipeline_overrides(root, data_dir, epochs=1) + LENIENT_GATE
    config = load_config(overrides).absolute()
    run_local(config)
    return overrides, config


def metrics_by_slice(uri: str) -> dict:
    """{slice key: {(metric name, model name, output name, is diff): value}} from TFMA's loader."""
    import tensorflow_model_analysis as tfma

    result = {}
    for slice_metrics in tfma.load_metrics(uri):
        keys = tuple((k.column, k.int64_value) for k in slice_metrics.slice_key.single_slice_keys)
        result[keys] = {
            (item.key.name, item.key.model_name, item.key.output_name, item.key.is_diff): item.value.double_value.value
            for item in slice_metrics.metric_keys_and_values
        }
    return result


def serving_listing(serving_dir: str) -> list[str]:
    """The names in a serving folder, sorted, less the publisher's `.issued-<version>` mark (a hidden
    file that keeps version numbers from being reused; TF Serving reads numeric folders only): what a
    test compares to the versions it expects, so that any stray staging folder still shows."""
    from components.serving_dir import ISSUED_PREFIX

    return sorted(name for name in os.listdir(serving_dir) if not name.startswith(ISSUED_PREFIX))
