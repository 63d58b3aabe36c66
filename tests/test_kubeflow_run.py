"""The compiled Kubeflow V2 / Vertex AI spec, executed: every container task through TFX's own
container entrypoint, one fresh process per task with the image's environment (tests/kfp_harness.py),
and the baseline lookup's two resolver tasks answered here with TFX's latest-blessed-model semantics.

Two runs of one spec on garment_shapes/small: the first blesses and pushes into serving_dir; the
second's Evaluator compares its model with the first's. Not covered: the image's build, Vertex's own
launcher and ML Metadata, caching, object stores (the pipeline root is a local folder).
"""

import json
import os

import pytest
from helpers import (
    KUBEFLOW_COMPONENTS,
    LENIENT_GATE,
    metrics_by_slice,
    serving_listing,
    small_pipeline_overrides,
    user_env,
)
from kfp_harness import SpecRunner, TaskFailed, artifact_title, image_environment

from pipeline.kubeflow_runner import compile_kubeflow
from pipeline_config import load_config

pytestmark = pytest.mark.slow  # one process per task, each importing TensorFlow and TFX

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLESSING_RESOLVER = "latest_blessed_model_resolver-model-blessing-resolver"
MODEL_RESOLVER = "latest_blessed_model_resolver-model-resolver"
# The two artifact queries TFX 1.16's step_builder compiles LatestBlessedModelStrategy into.
BLESSING_QUERY = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
MODEL_QUERY = (
    'schema_title="tfx.Model" AND state=LIVE AND '
    "name=\"{{$.inputs.artifacts['input'].metadata['current_model_id']}}\""
)


def latest_blessed_model(task: str, queries: dict, inputs: dict, produced: list) -> dict:
    """The resolver tasks, answered as the backend answers their queries over ML Metadata: the latest
    ModelBlessing marked blessed, then the Model it names (the Evaluator's entrypoint stores the
    Model's resource name as `current_model_id`). Together: TFX's LatestBlessedModelStrategy."""
    if task == BLESSING_RESOLVER:
        assert queries == {"model_blessing": {"filter": BLESSING_QUERY}}
        blessings = [a for a in produced if artifact_title(a) == "tfx.ModelBlessing"]
        blessed = [a for a in blessings if a["metadata"].get("blessed") == 1]
        return {"model_blessing": blessed[-1:]}
    assert task == MODEL_RESOLVER and queries == {"model": {"filter": MODEL_QUERY}}
    names = {blessing["metadata"]["current_model_id"] for blessing in inputs["input"]}
    return {"model": [a for a in produced if artifact_title(a) == "tfx.Model" and a["name"] in names]}


@pytest.fixture(scope="module")
def spec(garment_data_dir, tmp_path_factory) -> dict:
    """The spec compiled for a small pipeline under a fresh root; its path and config."""
    root = tmp_path_factory.mktemp("kubeflow_run")
    overrides = small_pipeline_overrides(root, garment_data_dir, epochs=2) + LENIENT_GATE
    config = load_config(overrides + ["gate.baseline=latest_blessed"]).absolute()
    path = compile_kubeflow(config, str(root / "spec" / "sparse_ae.json"), allow_local=True)
    return {"path": path, "config": config, "root": root}


def spec_runner(spec: dict, spec_path: str | None = None) -> SpecRunner:
    environment = image_environment(os.path.join(ROOT, "Dockerfile"), user_env())
    workdir = spec["root"] / "workdir"
    workdir.mkdir(exist_ok=True)
    return SpecRunner(spec_path or spec["path"], environment, latest_blessed_model, cwd=str(workdir))


def print_times(run_id: str, tasks: dict) -> None:
    for task in tasks.values():
        print(f"{run_id} {task.name}: {task.seconds:.1f} s")
    print(f"{run_id} total: {sum(task.seconds for task in tasks.values()):.1f} s")


@pytest.fixture(scope="module")
def runs(spec) -> dict:
    runner = spec_runner(spec)
    runs = {}
    for run_id in ("run-1", "run-2"):
        runs[run_id] = runner.run(run_id)
        print_times(run_id, runs[run_id])
    return runs


def artifact(tasks: dict, task: str, key: str) -> dict:
    (found,) = tasks[task].output["artifacts"][key]["artifacts"]
    return found


def overall_psnr(evaluation_uri: str, model_name: str) -> float:
    """The overall (unsliced) PSNR of model_name ("candidate" or "baseline") in TFMA's output."""
    overall = metrics_by_slice(evaluation_uri)[()]
    return next(
        value
        for (name, model, _, is_diff), value in overall.items()
        if name == "psnr" and not is_diff and (model == "baseline") == (model_name == "baseline")
    )


def test_the_first_run_executes_every_task_blesses_and_pushes(runs, spec):
    first = runs["run-1"]
    assert set(first) == KUBEFLOW_COMPONENTS | {BLESSING_RESOLVER, MODEL_RESOLVER}
    assert first[MODEL_RESOLVER].output["artifacts"]["model"]["artifacts"] == []  # no baseline yet
    examples = artifact(first, "TFDSExampleGen", "examples")
    assert sorted(json.loads(examples["metadata"]["split_names"])) == ["eval", "train"]

    blessing = artifact(first, "Evaluator", "blessing")
    assert blessing["metadata"]["blessed"] == 1 and os.path.exists(os.path.join(blessing["uri"], "BLESSED"))
    assert blessing["metadata"]["current_model_id"] == artifact(first, "Trainer", "model")["name"]
    assert "baseline_model_id" not in blessing["metadata"]

    pushed = artifact(first, "ServingPusher", "pushed_model")
    assert pushed["metadata"]["pushed"] == 1
    version = pushed["metadata"]["pushed_destination"]
    assert os.path.dirname(version) == spec["config"].serving_dir
    assert os.path.exists(os.path.join(version, "saved_model.pb"))
    assert serving_listing(spec["config"].serving_dir) == [os.path.basename(version)]


def test_the_second_run_compares_with_the_first_runs_model(runs):
    first, second = runs["run-1"], runs["run-2"]
    first_model = artifact(first, "Trainer", "model")
    assert second[BLESSING_RESOLVER].output["artifacts"]["model_blessing"]["artifacts"] == [
        artifact(first, "Evaluator", "blessing")
    ]
    assert artifact(second, MODEL_RESOLVER, "model") == first_model

    blessing = artifact(second, "Evaluator", "blessing")
    assert blessing["metadata"]["baseline_model_id"] == first_model["name"]
    assert blessing["metadata"]["baseline_model"] == first_model["uri"]
    assert blessing["metadata"]["current_model_id"] == artifact(second, "Trainer", "model")["name"]
    # The baseline evaluated in run 2 is run 1's model: on the same eval split, the same PSNR.
    baseline = overall_psnr(artifact(second, "Evaluator", "evaluation")["uri"], "baseline")
    assert baseline == pytest.approx(overall_psnr(artifact(first, "Evaluator", "evaluation")["uri"], "candidate"))


def test_a_broken_executor_class_path_fails_that_task(spec, tmp_path):
    """The harness reports the task whose executor cannot be imported, and runs nothing after it."""
    with open(spec["path"]) as handle:
        job = json.load(handle)
    args = job["pipelineSpec"]["deploymentSpec"]["executors"]["TFDSExampleGen_executor"]["container"]["args"]
    args[args.index("--executor_class_path") + 1] = "components.tfds_example_gen.executor.NoSuchExecutor"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(job))
    runner = spec_runner(spec, str(broken))
    with pytest.raises(TaskFailed, match="NoSuchExecutor") as failure:
        runner.run("broken")
    assert failure.value.task == "TFDSExampleGen" and runner.produced == []
