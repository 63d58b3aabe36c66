"""Kubeflow Pipelines v2 / Vertex AI: the compiled spec, and the image its steps run in.

Neither a KFP backend nor Docker runs here: the spec is checked against KFP's own PipelineSpec
proto, the Dockerfile against the pinned TFX version and this package.
"""
import json
import os
import re

import tfx
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPONENTS = {"TFDSExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "Evaluator",
              "ServingPusher"}
IMAGE = "europe-docker.pkg.dev/my-project/ml/sparse-ae-tfx:7"
BEAM = ["--runner=DataflowRunner", "--project=my-project", "--region=europe-west4",
        "--temp_location=gs://bucket/beam-tmp"]


def test_compile_kubeflow_writes_a_pipeline_spec_with_image_beam_and_training_settings(tmp_path, capsys):
    output = tmp_path / "spec" / "sparse_ae.json"
    status = cli.main(["pipeline", "compile", "--runner", "kubeflow", "--output", str(output),
                       "--set", "pipeline_root=gs://bucket/root", "--set", "serving_dir=gs://bucket/serving",
                       "--set", f"container_image={IMAGE}", "--set", "beam_pipeline_args=" + ",".join(BEAM),
                       "--set", "model.epochs=7", "--set", "model.distribution_strategy=multi_worker_mirrored",
                       "--set", "steps_per_epoch=50"])
    assert status == 0 and str(output) in capsys.readouterr().out
    job = json.loads(output.read_text())
    spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())  # strict: unknown fields fail
    assert spec.pipeline_info.name == "sparse-ae"  # KFP's name pattern allows no underscore

    tasks = set(spec.root.dag.tasks)
    assert COMPONENTS <= tasks and any(task.startswith("latest_blessed_model_resolver") for task in tasks)
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    containers = {name: json_format.MessageToDict(value.struct_value)["container"] for name, value in executors.items()
                  if "container" in value.struct_value.fields}
    assert {f"{component}_executor" for component in COMPONENTS} <= set(containers)
    assert {container["image"] for container in containers.values()} == {IMAGE}
    for component in ("TFDSExampleGen", "StatisticsGen", "Evaluator"):
        assert containers[f"{component}_executor"]["args"][-len(BEAM):] == BEAM

    trainer = spec.root.dag.tasks["Trainer"].inputs.parameters
    custom_config = json.loads(trainer["custom_config"].runtime_value.constant_value.string_value)
    assert custom_config["model"]["epochs"] == 7
    assert custom_config["model"]["distribution_strategy"] == "multi_worker_mirrored"
    train_args = json.loads(trainer["train_args"].runtime_value.constant_value.string_value)
    assert int(train_args["num_steps"]) == 350
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"


def test_dockerfile_builds_on_the_pinned_tfx_image_and_installs_this_project():
    dockerfile = open(os.path.join(ROOT, "Dockerfile")).read()
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == [f"gcr.io/tfx-oss-public/tfx:{tfx.__version__}"]
    assert tfx.__version__ == "1.16.0"
    # It copies setup.py, the constraints and every package setup.py installs, then installs them.
    copied = {source.rstrip("/") for line in re.findall(r"^COPY (.+)$", dockerfile, re.M) for source in line.split()[:-1]}
    assert {"setup.py", "constraints.txt", "pipeline_config.py", "sparse_ae", "components", "pipeline"} <= copied
    assert re.search(r"^RUN pip install .*-c constraints\.txt \.( |$)", dockerfile, re.M)
    setup = open(os.path.join(ROOT, "setup.py")).read()
    assert 'name="sparse-ae-tfx"' in setup and 'py_modules=["pipeline_config"]' in setup
    assert "sparse_ae*" in setup and "components*" in setup and "pipeline*" in setup
    ignored = open(os.path.join(ROOT, ".dockerignore")).read().split()
    assert ".venv/" in ignored and "tfds_data/" in ignored
