"""The project's import graph, read with `ast` (every import, function-level ones included):
no cycles, and each layer imports only what it may. And the shipped command line without benchmarks/.

Layers (style.md, "Our own rules of thumb"):
- sparse_ae/ never imports TFX (nor its stack: ML Metadata, TFMA, TFDV, Beam), components/,
  pipeline/, pipeline_config.py or benchmarks/.
- components/ never imports pipeline/, pipeline_config.py or benchmarks/, and of sparse_ae/ only
  the data access (`sparse_ae.data`, `sparse_ae.datasets`), the errors, the calibration record
  (`sparse_ae.calibration`) and the serving folder's layout (`sparse_ae.serving_layout`): never
  the model's internals (model, losses, training, export, tuner).
- pipeline/ and pipeline_config.py never import benchmarks/, except `sparse-ae bench` in
  pipeline/cli.py, inside its handler (the Docker image leaves benchmarks/ out).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("sparse_ae", "components", "pipeline", "benchmarks")
MODULES = ("pipeline_config",)
TFX_STACK = ("tfx", "tfx_bsl", "ml_metadata", "tensorflow_model_analysis", "tensorflow_data_validation", "apache_beam")
COMPONENTS_MAY_USE = {
    "sparse_ae",
    "sparse_ae.errors",
    "sparse_ae.data",
    "sparse_ae.datasets",
    "sparse_ae.calibration",
    "sparse_ae.serving_layout",
}
BENCH_HANDLER = ("pipeline.cli", "run_benchmarks")

Import = tuple[str, str, bool]  # (imported module, enclosing function or "", module level)


def _source_files() -> dict[str, str]:
    """Dotted module name -> file path, for every module of the project's layers."""
    found = {name: os.path.join(ROOT, f"{name}.py") for name in MODULES}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for file in files:
                if file.endswith(".py"):
                    parts = os.path.relpath(os.path.join(folder, file), ROOT)[:-3].split(os.sep)
                    found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = os.path.join(folder, file)
    return found


def _imports(module: str, path: str, known: set[str]) -> list[Import]:
    """What a module imports: project modules resolved (`from pkg import submodule` is the submodule),
    other names as written."""
    tree = ast.parse(open(path).read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    result: list[Import] = []

    def visit(node: ast.AST, function: str, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, function or child.name, False)
                continue
            if isinstance(child, ast.Import):
                result.extend((alias.name, function, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                for alias in child.names:
                    name = f"{base}.{alias.name}"
                    result.append((name if name in known else base, function, top))
            visit(child, function, top and not isinstance(child, ast.ClassDef))

    visit(tree, "", True)
    return result


def _graph() -> dict[str, list[Import]]:
    files = _source_files()
    return {module: _imports(module, path, set(files)) for module, path in files.items()}


def _project(name: str, known) -> str:
    """The project module an imported name refers to (itself or its nearest known ancestor), or ""."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges[node]:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return groups


def _in(name: str, prefixes) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_the_graph_sees_every_import_kind():
    """The reader itself: relative, function-level and `from package import submodule` imports."""
    graph = _graph()
    assert len(graph) > 60 and "pipeline_config" in graph and "components.serving_dir" in graph
    assert ("sparse_ae.datasets.garment_shapes", "", True) in graph["sparse_ae.datasets"]  # relative
    assert ("benchmarks.run", *BENCH_HANDLER[1:], False) in graph["pipeline.cli"]  # function-level
    assert ("components.serving_pusher.executor", "", True) in graph["components.serving_pusher.component"]


def test_no_import_cycles():
    graph = _graph()
    edges = {module: {_project(name, graph) for name, _, _ in imports} - {""} for module, imports in graph.items()}
    assert _cycles(edges) == []


def test_layers_import_only_downward():
    violations = []
    for module, imports in _graph().items():
        for name, function, top in imports:
            if module.startswith("sparse_ae") and _in(
                name, TFX_STACK + ("components", "pipeline", "pipeline_config", "benchmarks")
            ):
                violations.append(f"{module} imports {name}")
            if module.startswith("components") and (
                _in(name, ("pipeline", "pipeline_config", "benchmarks"))
                or (
                    _in(name, ("sparse_ae",))
                    and name not in COMPONENTS_MAY_USE
                    and not name.startswith("sparse_ae.datasets.")
                )
            ):
                violations.append(f"{module} imports {name}")
            if (
                _in(module, ("pipeline", "pipeline_config"))
                and _in(name, ("benchmarks",))
                and ((module, function) != BENCH_HANDLER or top)
            ):
                violations.append(f"{module} imports {name}" + (f" in {function}()" if function else ""))
    assert violations == []


_WITHOUT_BENCHMARKS = """
import contextlib, importlib.abc, io, json, sys

class NoBenchmarks(importlib.abc.MetaPathFinder):
    '''As in the Docker image: there is no benchmarks package.'''
    def find_spec(self, name, path=None, target=None):
        if name == "benchmarks" or name.startswith("benchmarks."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoBenchmarks())
import pipeline.cli

def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = pipeline.cli.main(list(argv))
        except SystemExit as stop:
            code = stop.code
    return {"code": code, "out": out.getvalue(), "err": err.getvalue()}

print(json.dumps({"help": run("--help"), "train_help": run("train", "--help"), "bench": run("bench"),
                  "loaded": sorted(name for name in sys.modules if name.split(".")[0] == "benchmarks")}))
"""


def test_command_line_works_without_benchmarks():
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_BENCHMARKS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["help"]["code"] == 0 and found["train_help"]["code"] == 0 and found["loaded"] == []
    listed = found["help"]["out"].split("{", 1)[1].split("}", 1)[0].split(",")
    assert listed == [
        "prepare",
        "train",
        "baseline",
        "reconstruct",
        "tune",
        "pipeline",
        "bench",
        "models",
        "promote",
        "rollback",
        "report",
        "score",
    ]
    assert found["bench"]["code"] == 2
    assert found["bench"]["err"].strip() == (
        "sparse-ae: error: `sparse-ae bench` needs the benchmarks/ folder of a source checkout, which this "
        "installation lacks (the Docker image leaves it out)"
    )
