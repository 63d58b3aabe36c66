"""Kubeflow Pipelines v2 / Vertex AI: the compiled spec, and the image its steps run in.

Neither a KFP backend nor Docker runs here: the spec is checked against KFP's own PipelineSpec
proto, the Dockerfile against the pinned TFX version and this package.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import tfx
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPONENTS = {
    "TFDSExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "Trainer",
    "Evaluator",
    "ServingPusher",
}
IMAGE = "europe-docker.pkg.dev/my-project/ml/sparse-ae-tfx:7"
BEAM = [
    "--runner=DataflowRunner",
    "--project=my-project",
    "--region=europe-west4",
    "--temp_location=gs://bucket/beam-tmp",
]


def test_compile_kubeflow_writes_a_pipeline_spec_with_image_beam_and_training_settings(tmp_path, capsys):
    output = tmp_path / "spec" / "sparse_ae.json"
    status = cli.main(
        [
            "pipeline",
            "compile",
            "--runner",
            "kubeflow",
            "--output",
            str(output),
            "--set",
            "pipeline_root=gs://bucket/root",
            "--set",
            "serving_dir=gs://bucket/serving",
            "--set",
            f"container_image={IMAGE}",
            "--set",
            "beam_pipeline_args=" + ",".join(BEAM),
            "--set",
            "model.epochs=7",
            "--set",
            "model.distribution_strategy=multi_worker_mirrored",
            "--set",
            "steps_per_epoch=50",
        ]
    )
    assert status == 0 and str(output) in capsys.readouterr().out
    job = json.loads(output.read_text())
    spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())  # strict: unknown fields fail
    assert spec.pipeline_info.name == "sparse-ae"  # KFP's name pattern allows no underscore

    tasks = set(spec.root.dag.tasks)
    assert COMPONENTS <= tasks and any(task.startswith("latest_blessed_model_resolver") for task in tasks)
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    containers = {
        name: json_format.MessageToDict(value.struct_value)["container"]
        for name, value in executors.items()
        if "container" in value.struct_value.fields
    }
    assert {f"{component}_executor" for component in COMPONENTS} <= set(containers)
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
    assert re.search(r"\bpip install .*-c constraints\.txt \.( |$)", check)
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
