"""The code on the path of artifacts, run directories and the serving directory uses file layers
that understand remote URIs (tf.io.gfile, TFX's fileio): builtin open, os file calls, glob, shutil
and tempfile appear only at the listed local-only sites, each with a comment saying why."""

import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED = sorted(glob.glob(os.path.join(ROOT, "components", "**", "*.py"), recursive=True)) + [
    os.path.join(ROOT, path)
    for path in (
        "pipeline/trainer_module.py",
        "pipeline/tuner_module.py",
        "pipeline/promotion.py",
        "pipeline/run_summary.py",
        "pipeline/mlmd_reader.py",
        "pipeline/report/__init__.py",
        "pipeline/report/content.py",
        "pipeline/report/render.py",
        "sparse_ae/plots.py",
        "sparse_ae/inference.py",
        "sparse_ae/cli.py",
        "sparse_ae/train.py",
        "sparse_ae/tuning.py",
        "sparse_ae/tuner.py",
        "sparse_ae/distribute.py",
        "sparse_ae/export.py",
        "sparse_ae/storage.py",
        "sparse_ae/serving_layout.py",
    )
]

LOCAL_ONLY_MODULES = {"glob", "shutil", "tempfile"}
OS_CALLS = {
    "makedirs",
    "mkdir",
    "listdir",
    "rename",
    "replace",
    "remove",
    "unlink",
    "rmdir",
    "walk",
    "scandir",
    "open",
    "stat",
}
OS_PATH_CALLS = {"exists", "isdir", "isfile", "getsize", "normpath"}

# (file, function, call): local by definition. Each site carries a comment with "local" on its line
# or the line above.
ALLOWED = {
    # Local serving folders: OS calls for real error messages, fsync and the atomic rename.
    ("components/serving_dir.py", "_copy_tree", "os.path.isdir"),
    ("components/serving_dir.py", "_copy_tree", "os.walk"),
    ("components/serving_dir.py", "_copy_tree", "os.makedirs"),
    ("components/serving_dir.py", "_copy_tree", "shutil.copyfile"),
    ("components/serving_dir.py", "_fsync", "os.open"),
    ("components/serving_dir.py", "_fsync_tree", "os.walk"),
    ("components/serving_dir.py", "_publish_by_rename", "os.rename"),
    ("components/serving_dir.py", "publish", "os.makedirs"),
    ("sparse_ae/serving_layout.py", "normalize_path", "os.path.normpath"),  # only for local paths
    # The sqlite ML Metadata file.
    ("pipeline/promotion.py", "_store", "os.path.exists"),
    ("pipeline/mlmd_reader.py", "metadata_file", "os.path.isdir"),
    ("pipeline/mlmd_reader.py", "metadata_file", "os.path.isfile"),
    # A non-chief worker's throwaway folder.
    ("sparse_ae/distribute.py", "writable_dir", "tempfile.mkdtemp"),
    ("sparse_ae/distribute.py", "discard", "shutil.rmtree"),
    # Scratch folders for h5py, which reads and writes only local files.
    ("sparse_ae/storage.py", "local_dir", "tempfile.mkdtemp"),
    ("sparse_ae/storage.py", "load_weights", "tempfile.mkdtemp"),
}


def _call_name(node: ast.Call) -> str:
    """'open', 'os.makedirs', 'os.path.exists', 'glob.glob'...; '' for calls of anything else."""
    func = node.func
    if isinstance(func, ast.Name):
        return func.id if func.id == "open" else ""
    if isinstance(func, ast.Attribute):
        value = func.value
        if isinstance(value, ast.Name):
            if value.id == "os" and func.attr in OS_CALLS or value.id in LOCAL_ONLY_MODULES:
                return f"{value.id}.{func.attr}"
        if (
            isinstance(value, ast.Attribute)
            and isinstance(value.value, ast.Name)
            and (value.value.id, value.attr) == ("os", "path")
            and func.attr in OS_PATH_CALLS
        ):
            return f"os.path.{func.attr}"
    return ""


def local_file_calls(source: str) -> list[tuple[str, str, int]]:
    """(function, call, line) of every local-only file call in source; function '' at module level."""
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call) and _call_name(child):
                found.append((function, _call_name(child), child.lineno))
            visit(child, inner)

    visit(ast.parse(source), "")
    return found


def _scan() -> list[tuple[str, str, str, int, str]]:
    sites = []
    for path in SCANNED:
        lines = open(path, encoding="utf-8").read().splitlines()
        for function, call, line in local_file_calls("\n".join(lines)):
            context = lines[line - 1] + (lines[line - 2] if line > 1 else "")
            sites.append((os.path.relpath(path, ROOT), function, call, line, context))
    return sites


def test_the_scan_finds_each_kind_of_local_file_call():
    source = (
        "import glob, os, shutil\n"
        "def f(p):\n"
        "    open(p)\n    os.makedirs(p)\n    os.listdir(p)\n    os.rename(p, p)\n    glob.glob(p)\n"
        "    shutil.copytree(p, p)\n    os.path.exists(p)\n    os.path.join(p, p)\n    tf.io.gfile.exists(p)\n"
    )
    assert [call for _, call, _ in local_file_calls(source)] == [
        "open",
        "os.makedirs",
        "os.listdir",
        "os.rename",
        "glob.glob",
        "shutil.copytree",
        "os.path.exists",
    ]


def test_artifact_paths_go_through_remote_aware_file_layers():
    sites = _scan()
    unexpected = [
        f"{path}:{line} {function}: {call}"
        for path, function, call, line, _ in sites
        if (path, function, call) not in ALLOWED
    ]
    assert not unexpected, "use tf.io.gfile or tfx.dsl.io.fileio (paths may be gs://):\n" + "\n".join(unexpected)


def test_every_local_only_site_is_commented_and_still_exists():
    sites = _scan()
    uncommented = [
        f"{path}:{line}"
        for path, function, call, line, context in sites
        if (path, function, call) in ALLOWED and "local" not in context.lower()
    ]
    assert not uncommented, "say in a comment why these paths are local: " + ", ".join(uncommented)
    stale = ALLOWED - {(path, function, call) for path, function, call, _, _ in sites}
    assert not stale, f"allow-list entries with no such call any more: {sorted(stale)}"
