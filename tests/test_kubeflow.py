"""Kubeflow Pipelines v2 / Vertex AI: the compiled spec, and the image its steps run in.

Neither a KFP backend nor Docker runs here: the spec is checked against KFP's own PipelineSpec
proto, the Dockerfile against the pinned TFX version and this package.
"""

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import tfx
from google.protobuf import json_format
from helpers import KUBEFLOW_COMPONENTS, set_args
from kfp.pipeline_spec import pipeline_spec_pb2
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipeline import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "europe-docker.pkg.dev/my-project/ml/sparse-ae-tfx:7"
BEAM = [
    "--runner=DataflowRunner",
    "--project=my-project",
    "--region=europe-west4",
    "--temp_location=gs://bucket/beam-tmp",
]


# Settings a cluster can serve: remote paths, a registry image, a prepared copy of the dataset.
ON_A_CLUSTER = [
    "pipeline_root=gs://bucket/root",
    "serving_dir=gs://bucket/serving",
    f"container_image={IMAGE}",
    "dataset.data_dir=gs://bucket/tfds",
    "dataset.download=false",
]


def compile_args(output, overrides) -> list:
    return ["pipeline", "compile", "--runner", "kubeflow", "--output", str(output), *set_args(overrides)]


def test_compile_kubeflow_writes_a_pipeline_spec_with_image_beam_and_training_settings(tmp_path, capsys):
    output = tmp_path / "spec" / "sparse_ae.json"
    training = [
        "beam_pipeline_args=" + ",".join(BEAM),
        "model.epochs=7",
        "model.distribution_strategy=multi_worker_mirrored",
        "steps_per_epoch=50",
    ]
    status = cli.main(compile_args(output, ON_A_CLUSTER + training))
    printed = capsys.readouterr().out
    assert status == 0 and str(output) in printed
    assert "Runs as compiled on Vertex AI Pipelines" in printed
    assert "gate.baseline live -> latest_blessed" in printed and "drift check dropped" in printed
    job = json.loads(output.read_text())
    spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())  # strict: unknown fields fail
    assert spec.pipeline_info.name == "sparse-ae"  # KFP's name pattern allows no underscore

    tasks = set(spec.root.dag.tasks)
    assert KUBEFLOW_COMPONENTS <= tasks and any(task.startswith("latest_blessed_model_resolver") for task in tasks)
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    containers = {
        name: json_format.MessageToDict(value.struct_value)["container"]
        for name, value in executors.items()
        if "container" in value.struct_value.fields
    }
    assert {f"{component}_executor" for component in KUBEFLOW_COMPONENTS} <= set(containers)
    assert {container["image"] for container in containers.values()} == {IMAGE}
    for component in ("TFDSExampleGen", "StatisticsGen", "Evaluator"):
        assert containers[f"{component}_executor"]["args"][-len(BEAM) :] == BEAM

    trainer = spec.root.dag.tasks["Trainer"].inputs.parameters
    custom_config = json.loads(trainer["custom_config"].runtime_value.constant_value.string_value)
    assert custom_config["model"]["epochs"] == 7
    assert custom_config["model"]["distribution_strategy"] == "multi_worker_mirrored"
    train_args = json.loads(trainer["train_args"].runtime_value.constant_value.string_value)
    assert int(train_args["num_steps"]) == 350
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"


@pytest.mark.parametrize(
    "override, named",
    [
        ("pipeline_root=/data/root", "pipeline_root=/data/root is a local path"),
        ("serving_dir=serving/sparse_ae", "serving_dir="),
        ("container_image=sparse-ae-tfx:latest", "container_image=sparse-ae-tfx:latest names no registry"),
        ("dataset.data_dir=none", "every run would find no prepared dataset"),
        ("dataset.data_dir=/data/tfds", "dataset.data_dir=/data/tfds is a local path"),
    ],
)
def test_compile_kubeflow_refuses_what_only_this_machine_serves(override, named, tmp_path, capsys):
    """One line, exit status 2, no spec; the line names the setting and the flag that goes on anyway."""
    output = tmp_path / "sparse_ae.json"
    assert cli.main(compile_args(output, ON_A_CLUSTER + [override])) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert named in line and "--allow-local" in line and not output.exists()


def test_a_dataset_downloaded_by_every_run_is_refused_and_allow_local_compiles_anyway(tmp_path, capsys):
    """The defaults (local paths, a local image, Fashion-MNIST downloaded at run time): refused, naming
    each; with --allow-local the spec is written and the changes from a local run are listed."""
    output = tmp_path / "sparse_ae.json"
    assert cli.main(compile_args(output, ["beam_pipeline_args=--runner=DirectRunner"])) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    for named in ("pipeline_root", "serving_dir", "container_image", "download the dataset inside its container"):
        assert named in line
    assert cli.main(compile_args(output, ["beam_pipeline_args=--runner=DirectRunner"]) + ["--allow-local"]) == 0
    printed = capsys.readouterr().out
    assert output.exists() and "Vertex AI Pipelines" in printed and "pipeline_name sparse_ae -> sparse-ae" in printed


def dockerfile_instructions() -> list:
    """(instruction, arguments) of each Dockerfile line, comments and continuations handled."""
    text = re.sub(r"\\\n", " ", open(os.path.join(ROOT, "Dockerfile")).read())
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line.strip() and not line.startswith("#")]


# Run in the image's file set: what `pip install .` installs there (setup.py's find_packages over the
# copied folders), each module imported from there, then the image's own check and the entry points.
IMAGE_SCRIPT = """
import importlib, json, os, pkgutil, sys
from setuptools import find_packages

here = os.getcwd()
packages = find_packages(include=json.loads(sys.argv[1]))
modules = ["pipeline_config"] + [info.name for package in packages
                                 for info in pkgutil.iter_modules([package.replace(".", "/")], package + ".")]
outside = {}
for name in packages + modules:
    module = importlib.import_module(name)
    if not os.path.abspath(module.__file__).startswith(here + os.sep):
        outside[name] = module.__file__
from pipeline.trainer_module import run_fn
from pipeline.cli import main
print("RESULT " + json.dumps({"packages": sorted(packages), "outside": outside, "run_fn": callable(run_fn),
                              "help": main.__module__}))
"""


@pytest.mark.slow  # imports every module of the project in a fresh interpreter
def test_the_images_file_set_installs_and_imports_on_its_own(tmp_path):
    """The image as built: FROM the TFX image of the pinned version; the files its COPY lines bring
    (and nothing else: not the checkout, not tests/ or benchmarks/) hold every package setup.py
    installs, each module imports from them, and the image's own RUN check and the Trainer step's
    run_fn and the console script's main import there."""
    instructions = dockerfile_instructions()
    assert [args for kind, args in instructions if kind == "FROM"] == [f"gcr.io/tfx-oss-public/tfx:{tfx.__version__}"]
    assert tfx.__version__ == "1.16.0"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    workdir = str(tmp_path)
    for kind, args in instructions:
        if kind == "ENV":
            name, value = re.split(r"[= ]", args, maxsplit=1)
            env[name] = value.strip()
        elif kind == "WORKDIR":
            workdir = os.path.join(str(tmp_path), args.strip().lstrip("/"))
            os.makedirs(workdir, exist_ok=True)
        elif kind == "COPY":
            *sources, target = args.split()
            for source in sources:
                origin, dest = os.path.join(ROOT, source), os.path.join(workdir, target)
                if os.path.isdir(origin):
                    shutil.copytree(origin, dest, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(origin, dest)
    assert env.get("TF_USE_LEGACY_KERAS") == "1"  # TFX 1.16's Trainer and TFMA need Keras 2
    (check,) = [args for kind, args in instructions if kind == "RUN"]
    assert re.search(r"\bpip install .*-c constraints\.txt \"?\.(\[[\w,-]+\])?\"?( |$)", check)
    import_check = re.search(r'python -c "([^"]+)"', check).group(1)

    setup = open(os.path.join(ROOT, "setup.py")).read()
    include = json.loads(re.search(r"find_packages\(include=(\[[^]]*\])\)", setup).group(1).replace("'", '"'))
    env["PYTHONPATH"] = workdir  # what `pip install .` puts on the path, without building a wheel
    for script, args in ((import_check, []), (IMAGE_SCRIPT, [json.dumps(include)])):
        result = subprocess.run(
            [sys.executable, "-c", script, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert {"sparse_ae", "components", "pipeline", "pipeline.report"} <= set(found["packages"])
    assert found["outside"] == {}, "imported from outside the image's files"
    assert found["run_fn"] and found["help"] == "pipeline.cli"
    assert 'entry_points={"console_scripts": ["sparse-ae=pipeline.cli:main"]}' in setup


# The container entrypoint of every step, and the modules its executors import through the pipeline.
STEP_IMPORTS = [
    "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
    "pipeline.pipeline",
    "pipeline.trainer_module",
    "pipeline.evaluator_module",
]
# Imported without a requirement declaring them: setuptools and the packages it vendors (jaraco-*; every
# Python image has them) and blinker (oauthlib imports it inside try/except, an optional extra).
UNDECLARED = {"setuptools", "pip", "wheel", "jaraco-text", "jaraco-functools", "jaraco-context", "blinker"}


def dockerfile_install_requirements() -> list:
    """setup.py's install_requires plus the extras the Dockerfile's `pip install` names (`.[kubeflow]`)."""
    (run,) = [args for kind, args in dockerfile_instructions() if kind == "RUN"]
    extras = re.search(r"\bpip install .*-c constraints\.txt \"?\.(?:\[([\w,-]+)\])?\"?(?: |$)", run).group(1)
    values = {}
    for node in ast.parse(open(os.path.join(ROOT, "setup.py")).read()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values["CORE"] + [req for extra in (extras or "").split(",") if extra for req in values["EXTRAS"][extra]]


def requirement_closure(requirements: list) -> set:
    """Normalized names of the distributions these requirements install, recursively, as resolved here."""
    found, pending = set(), [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        key = (name, tuple(sorted(requirement.extras)))
        if key in found:
            continue
        found.add(key)
        for text in importlib.metadata.requires(name) or []:
            child = Requirement(text)
            if child.marker is None or any(
                child.marker.evaluate({"extra": extra}) for extra in sorted(requirement.extras) or [""]
            ):
                pending.append(child)
    return {name for name, _ in found}


@pytest.mark.slow  # imports TensorFlow, TFX and the pipeline in a fresh interpreter
def test_the_image_installs_every_package_the_steps_import():
    """The distributions of every module the entrypoint and the pipeline's executors import (in a fresh
    interpreter with the image's environment) are among those the Dockerfile's install line brings."""
    script = "import importlib, json, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
    script += "print('RESULT ' + json.dumps([getattr(m, '__file__', None) for m in list(sys.modules.values())]))"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script, *STEP_IMPORTS], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    files = {os.path.realpath(f) for f in json.loads(result.stdout.split("RESULT ", 1)[1]) if f}
    owner = {}
    for dist in importlib.metadata.distributions():
        for path in dist.files or []:
            owner[os.path.realpath(dist.locate_file(path))] = canonicalize_name(dist.metadata["Name"])
    imported = {owner[f] for f in files if f in owner} - {"sparse-ae-tfx"}
    assert {"kfp-pipeline-spec", "tfx", "tensorflow"} <= imported  # the mapping found what it must
    missing = imported - requirement_closure(dockerfile_install_requirements()) - UNDECLARED
    assert not missing, f"imported by the steps, not installed by the Dockerfile: {sorted(missing)}"
