"""Run a compiled Kubeflow V2 / Vertex AI pipeline spec here, task by task, as its launcher would.

For each container task: an `ExecutorInput` built from the spec (constant parameters in the deprecated
`inputs.parameters`, the only place TFX's schema-2.0 entrypoint reads them; input artifacts from the
upstream tasks' `ExecutorOutput`s; output artifacts provisioned under the pipeline root; the output
file), `{{$}}` filled with it, the container's command run in a fresh process with the image's
environment, and the `ExecutorOutput` read back. Resolver tasks (artifact queries, no container) are
answered by a function the caller gives: the harness knows no resolver semantics.

Not emulated: the image itself, Vertex's exact launcher and MLMD, caching, object stores.
"""

from __future__ import annotations

import dataclasses
import graphlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

# (task name, its resolver spec's outputArtifactQueries, its input artifacts, every artifact produced so
# far in all runs, oldest first) -> {output key: [runtime artifacts]}
Resolve = Callable[[str, dict, dict, list], dict]
PLACEHOLDER = "{{$}}"


class TaskFailed(AssertionError):
    """A task's command exited non-zero, or wrote no ExecutorOutput."""

    def __init__(self, task: str, message: str):
        super().__init__(f"task {task}: {message}")
        self.task = task


def artifact_title(artifact: dict) -> str:
    """The TFX type title (tfx.Model, ...) of a runtime artifact or an artifact type schema."""
    schema = artifact.get("type", artifact)
    if "schemaTitle" in schema:
        return schema["schemaTitle"]
    return re.search(r"^title: (\S+)$", schema["instanceSchema"], re.M).group(1)


def image_environment(dockerfile: str, base: dict) -> dict:
    """base plus the ENV lines of the Dockerfile (`ENV NAME=value` or `ENV NAME value`)."""
    env = dict(base)
    with open(dockerfile) as handle:
        for line in handle:
            if line.startswith("ENV "):
                name, value = re.split(r"[= ]", line[4:].strip(), maxsplit=1)
                env[name] = value.strip()
    return env


@dataclasses.dataclass
class TaskRun:
    name: str
    seconds: float
    output: dict  # the ExecutorOutput (JSON as written by the task; the resolver's answer for resolvers)


class SpecRunner:
    """Runs a compiled spec's tasks; keeps every artifact produced, across runs, for the resolvers."""

    def __init__(self, spec_file: str, env: dict, resolve: Resolve, cwd: str):
        with open(spec_file) as handle:
            job = json.load(handle)
        self.spec = job["pipelineSpec"]
        self.root = job["runtimeConfig"]["gcsOutputDirectory"]
        self.env, self.resolve, self.cwd = env, resolve, cwd
        self.produced: list = []  # runtime artifacts of all runs, oldest first (the "metadata store")
        self._next_id = 0

    def task_order(self) -> list[str]:
        """The DAG's tasks in an order where each comes after its dependencies and artifact producers."""
        graph = {}
        for name, task in self.spec["root"]["dag"]["tasks"].items():
            inputs = task.get("inputs", {}).get("artifacts", {}).values()
            producers = {spec["taskOutputArtifact"]["producerTask"] for spec in inputs}
            graph[name] = producers | set(task.get("dependentTasks", []))
        return list(graphlib.TopologicalSorter(graph).static_order())

    def run(self, run_id: str) -> dict[str, TaskRun]:
        """One pipeline run: every task in order; raises TaskFailed at the first failing one."""
        results: dict[str, TaskRun] = {}
        for name in self.task_order():
            started = time.monotonic()
            output = self._run_task(run_id, name, results)
            results[name] = TaskRun(name, time.monotonic() - started, output)
            if "container" in self._executor(name):  # a resolver's answer is no new artifact
                for artifacts in output.get("artifacts", {}).values():
                    self.produced.extend(artifacts["artifacts"])
        return results

    def _executor(self, name: str) -> dict:
        task = self.spec["root"]["dag"]["tasks"][name]
        label = self.spec["components"][task["componentRef"]["name"]]["executorLabel"]
        return self.spec["deploymentSpec"]["executors"][label]

    def _run_task(self, run_id: str, name: str, done: dict[str, TaskRun]) -> dict:
        task = self.spec["root"]["dag"]["tasks"][name]
        component = self.spec["components"][task["componentRef"]["name"]]
        executor = self._executor(name)
        inputs = self._input_artifacts(task, done)
        outputs = component.get("outputDefinitions", {}).get("artifacts", {})
        if "resolver" in executor:
            found = self.resolve(name, executor["resolver"]["outputArtifactQueries"], inputs, list(self.produced))
            for key, artifacts in found.items():  # the type the spec declares, as the launcher records it
                for artifact in artifacts:
                    artifact.setdefault("type", outputs[key]["artifactType"])
            return {"artifacts": {key: {"artifacts": artifacts} for key, artifacts in found.items()}}
        task_dir = os.path.join(self.root, run_id, name)
        executor_input = {
            "inputs": {
                "parameters": self._parameters(task),
                "artifacts": {key: {"artifacts": artifacts} for key, artifacts in inputs.items()},
            },
            "outputs": {
                "artifacts": {
                    key: {"artifacts": [self._new_artifact(os.path.join(task_dir, key), spec["artifactType"])]}
                    for key, spec in outputs.items()
                },
                "outputFile": os.path.join(task_dir, "executor_output.json"),
            },
        }
        json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())  # strict: the launcher's format
        for artifact_list in executor_input["outputs"]["artifacts"].values():
            os.makedirs(artifact_list["artifacts"][0]["uri"])  # on an object store a folder exists implicitly
        container = executor["container"]
        invocation = json.dumps(executor_input)
        command = [arg.replace(PLACEHOLDER, invocation) for arg in container["command"] + container["args"]]
        if any("{{$" in arg for arg in command):
            raise NotImplementedError(f"task {name}: a placeholder other than {PLACEHOLDER} in {command}")
        if command[0] == "python":
            command[0] = sys.executable  # the image's python: this virtualenv's
        result = subprocess.run(command, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=900)
        output_file = executor_input["outputs"]["outputFile"]
        if result.returncode != 0 or not os.path.exists(output_file):
            raise TaskFailed(name, f"exit status {result.returncode}\n{result.stderr[-4000:]}")
        with open(output_file) as handle:
            output = json.load(handle)
        json_format.ParseDict(output, pipeline_spec_pb2.ExecutorOutput())
        for key, artifact_list in output.get("artifacts", {}).items():
            for artifact in artifact_list["artifacts"]:
                artifact["type"] = outputs[key]["artifactType"]
        return output

    def _parameters(self, task: dict) -> dict:
        """The task's constant parameters as `inputs.parameters` (pipeline_spec Value JSON)."""
        parameters = {}
        for key, spec in task.get("inputs", {}).get("parameters", {}).items():
            if "constantValue" not in spec.get("runtimeValue", {}):
                raise NotImplementedError(f"parameter {key}: only constants are emulated, got {spec}")
            parameters[key] = spec["runtimeValue"]["constantValue"]
        return parameters

    def _input_artifacts(self, task: dict, done: dict[str, TaskRun]) -> dict:
        """{input key: the producer's output artifacts}, as recorded from its ExecutorOutput."""
        inputs = {}
        for key, spec in task.get("inputs", {}).get("artifacts", {}).items():
            source = spec["taskOutputArtifact"]
            produced = done[source["producerTask"]].output.get("artifacts", {})
            inputs[key] = produced.get(source["outputArtifactKey"], {"artifacts": []})["artifacts"]
        return inputs

    def _new_artifact(self, uri: str, artifact_type: dict) -> dict:
        """An output artifact as Vertex provisions it: a resource name, a URI, its type."""
        self._next_id += 1
        name = f"projects/0/locations/local/metadataStores/default/artifacts/{self._next_id}"
        return {"name": name, "uri": uri, "type": artifact_type}
