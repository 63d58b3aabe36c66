"""Faults and reruns, injected for real on one pipeline root (garment_shapes/small, in-memory Beam).

In order, each step building on the previous one's state:
1. a 1-epoch run publishes version V1 (in this process);
2. `sparse-ae pipeline run` with 1,000 epochs is killed (SIGKILL to its process group) once
   Keras has started epoch 3 inside the Trainer;
3. two `sparse-ae pipeline run` processes (2 epochs) start at once: one reruns after the kill,
   from the cached upstream components, and pushes V2; the other is refused (exit 2). Before
   them, staging folders as a killed push leaves them are planted in the serving directory;
4. an unwritable serving directory (its parent is a regular file): the 1-epoch model (Trainer
   from cache) is evaluated against V2's model and blessed, and its push fails;
5. disk full during the push: the same push to the real serving directory under RLIMIT_FSIZE;
   every other component comes from cache (the Evaluator's too, thanks to step 4), so the
   push is the only step that writes more than ML Metadata's few hundred KB.

The gate is lenient (5 dB, change tolerance 100 dB): these tests are about faults, not the gate.
The rerun uses 2 epochs rather than the killed run's 1,000 to stay short; the killed Trainer
execution is left RUNNING in ML Metadata and never counts as a cached result either way (TFX's
cache takes completed executions only).
"""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers import CLI, run_cli, served_pipeline_root, set_args, user_env
from helpers import file_digests as tree

from components import serving_dir
from components.serving_dir import (
    ISSUED_PREFIX,
    STAGING_PREFIX,
    PublishError,
    issued_version,
    publish,
    remove_stale_staging,
)
from pipeline.run_lock import LOCK_FILE
from pipeline.run_summary import latest_run_id, open_store, summarize_run
from sparse_ae.serving_layout import serving_versions

UPSTREAM = ["TFDSExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator"]
FILE_SIZE_LIMIT = 1_000_000  # bytes: above every file step 4 writes but the model's variables (about 1.9 MB)


def cli(overrides, output_dir, name, flags=(), **popen):
    """Start `sparse-ae pipeline run [flags]` with its stdout and stderr in files under output_dir."""
    env = user_env()
    env["PYTHONUNBUFFERED"] = "1"  # Keras's epoch lines reach the file as they are printed
    stdout, stderr = (open(os.path.join(output_dir, f"{name}.{kind}"), "w") for kind in ("out", "err"))
    process = subprocess.Popen(
        [CLI, "pipeline", "run", *flags, *set_args(overrides)],
        stdout=stdout,
        stderr=stderr,
        text=True,
        env=env,
        **popen,
    )
    stdout.close(), stderr.close()  # the child has its own copies
    process.paths = stdout.name, stderr.name
    return process


def finish(process, timeout=900) -> dict:
    process.wait(timeout=timeout)
    out, err = (open(path).read() for path in process.paths)
    return {"rc": process.returncode, "stdout": out, "stderr": err, "pid": process.pid}


def pushed_models(metadata: str) -> list:
    """(id, destination) of every PushedModel that claims a push."""
    store = open_store(metadata)
    return sorted(
        (a.id, a.custom_properties["pushed_destination"].string_value)
        for a in store.get_artifacts_by_type("PushedModel")
        if a.custom_properties["pushed"].int_value
    )


def run_count(metadata: str) -> int:
    return len(open_store(metadata).get_contexts_by_type("pipeline_run"))


@pytest.fixture(scope="module")
def first(garment_data_dir, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("faults"))
    overrides, config = served_pipeline_root(root, garment_data_dir)
    metadata, name = config.resolved_metadata_path, config.pipeline_name
    return {
        "root": root,
        "overrides": overrides,
        "metadata": metadata,
        "name": name,
        "serving": config.serving_dir,
        "pipeline_root": config.pipeline_root,
        "summary": summarize_run(metadata, name),
    }


@pytest.fixture(scope="module")
def killed(first):
    before = tree(first["serving"])
    process = cli(first["overrides"] + ["model.epochs=1000"], first["root"], "killed", start_new_session=True)
    deadline = time.time() + 600
    while process.poll() is None and time.time() < deadline:
        output = open(process.paths[0]).read()
        if "Trainer started" in output and "Epoch 3/1000" in output:
            break
        time.sleep(0.2)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the CLI and anything it started
    except ProcessLookupError:  # it ended by itself: the assertion below says how
        pass
    result = finish(process)
    assert "Epoch 3/1000" in result["stdout"], (
        f"the Trainer never reached epoch 3:\n{result['stdout'][-3000:]}\n{result['stderr'][-3000:]}"
    )
    result.update(
        serving_before=before,
        serving_after=tree(first["serving"]),
        summary=summarize_run(first["metadata"], first["name"]),
        lock=open(os.path.join(first["pipeline_root"], LOCK_FILE)).read(),
    )
    return result


@pytest.fixture(scope="module")
def concurrent(first, killed):
    serving, host = first["serving"], socket.gethostname()
    (v1,) = serving_versions(serving)
    # What a push killed mid-copy leaves: a staging folder of a process that no longer exists
    # (the killed run's pid, on this host), and one of another host, which may still be copying.
    leftovers = {
        "dead": f"{STAGING_PREFIX}{v1 + 1}-{host}-{killed['pid']}",
        "other_host": f"{STAGING_PREFIX}{v1 + 2}-elsewhere.example-1",
    }
    for name in leftovers.values():
        os.makedirs(os.path.join(serving, name, "variables"))
        open(os.path.join(serving, name, "saved_model.pb"), "wb").write(b"partial")
    versions_with_leftovers = serving_versions(serving)
    runs_before, v1_files = run_count(first["metadata"]), tree(os.path.join(serving, str(v1)))

    overrides = first["overrides"] + ["model.epochs=2"]
    processes = [cli(overrides, first["root"], f"concurrent{i}") for i in range(2)]  # at once
    results = [finish(process) for process in processes]
    winner = next((r for r in results if r["rc"] == 0), None)
    loser = next((r for r in results if r is not winner), None)
    return {
        "results": results,
        "winner": winner,
        "loser": loser,
        "leftovers": leftovers,
        "v1": v1,
        "versions_with_leftovers": versions_with_leftovers,
        "runs_before": runs_before,
        "runs_after": run_count(first["metadata"]),
        "v1_files": v1_files,
        "v1_files_after": tree(os.path.join(serving, str(v1))),
        "entries_after": sorted(os.listdir(serving)),
        "summary": summarize_run(first["metadata"], first["name"]),
    }


@pytest.fixture(scope="module")
def unwritable(first, concurrent):
    """A serving directory nobody can create or write, root included: its parent is a regular
    file (ENOTDIR). (chmod does not stop root, and a read-only mount needs privileges.)"""
    blocker = os.path.join(first["root"], "not_a_folder")
    open(blocker, "w").write("a file where a folder should be\n")
    bad_serving = os.path.join(blocker, "serving")
    before, pushes_before = tree(first["serving"]), pushed_models(first["metadata"])
    # No live model there: the baseline is the latest blessed one, V2's 2-epoch model.
    # --other-serving-dir: the root's pushes went to first["serving"]; this run means another folder.
    overrides = first["overrides"] + [f"serving_dir={bad_serving}"]
    result = finish(cli(overrides, first["root"], "unwritable", flags=["--other-serving-dir"]))
    result.update(
        bad_serving=bad_serving,
        serving_before=before,
        serving_after=tree(first["serving"]),
        pushes_before=pushes_before,
        pushes_after=pushed_models(first["metadata"]),
        summary=summarize_run(first["metadata"], first["name"]),
    )
    return result


@pytest.fixture(scope="module")
def disk_full(first, unwritable):
    """RLIMIT_FSIZE: the kernel refuses (EFBIG, 'File too large') any write past the limit, for
    root too and without privileges, which a tiny tmpfs or a read-only mount would need. The
    limit applies to the whole run, so it is set between the largest file the run writes
    elsewhere (ML Metadata's sqlite: everything but the push comes from cache) and the model's
    variables. (A Beam component would not run under it: TFX copies its own package, files of
    up to 3 MB, to a temporary folder each time a Beam executor starts.)"""
    metadata, serving = first["metadata"], first["serving"]
    live = os.path.join(serving, str(serving_versions(serving)[-1]))
    assert os.path.getsize(metadata) < FILE_SIZE_LIMIT / 2, "ML Metadata outgrew the test's file size limit"
    assert os.path.getsize(os.path.join(live, "variables", "variables.data-00000-of-00001")) > FILE_SIZE_LIMIT
    before, pushes_before = tree(serving), pushed_models(metadata)

    def limit_file_size():  # in the child; Python ignores SIGXFSZ, so writes fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    # The 1-epoch model of run 1, blessed against the live 2-epoch one in step 4, pushed again.
    result = finish(cli(first["overrides"], first["root"], "disk_full", preexec_fn=limit_file_size))
    result.update(
        serving_before=before,
        serving_after=tree(serving),
        pushes_before=pushes_before,
        pushes_after=pushed_models(metadata),
        summary=summarize_run(metadata, first["name"]),
    )
    return result


def states(summary) -> dict:
    return dict(summary.components)


@pytest.mark.e2e
def test_a_run_killed_in_the_trainer_changes_nothing_served(first, killed):
    assert killed["rc"] == -signal.SIGKILL
    assert killed["serving_after"] == killed["serving_before"]  # byte for byte, no staging folder either
    assert serving_versions(first["serving"]) == [int(os.path.basename(first["summary"].pushed_path))]
    # ML Metadata still opens; the killed run is recorded as it was when it died.
    found = states(killed["summary"])
    assert killed["summary"].run_id != first["summary"].run_id
    assert all(found[node] == "cached" for node in UPSTREAM), found
    assert found["Trainer"] == "running"
    assert "Evaluator" not in found and "ServingPusher" not in found
    assert f"pid {killed['pid']} " in killed["lock"]  # the dead holder's line stays in the lock file


@pytest.mark.e2e
def test_rerun_after_a_kill_resumes_from_cache_and_pushes_a_new_version(first, killed, concurrent):
    winner, summary = concurrent["winner"], concurrent["summary"]
    assert winner is not None, [(r["rc"], r["stderr"][-2000:]) for r in concurrent["results"]]
    assert "Pipeline sparse_ae finished" in winner["stdout"]
    assert summary.run_id not in (killed["summary"].run_id, first["summary"].run_id)
    found = states(summary)
    assert all(found[node] == "cached" for node in UPSTREAM), found
    assert found["Trainer"] == found["Evaluator"] == found["ServingPusher"] == "complete", found
    assert summary.blessed is True and summary.pushed_path
    assert os.path.dirname(summary.pushed_path) == first["serving"]
    assert int(os.path.basename(summary.pushed_path)) > concurrent["v1"]
    assert concurrent["v1_files_after"] == concurrent["v1_files"]
    assert serving_versions(first["serving"]) == [concurrent["v1"], int(os.path.basename(summary.pushed_path))]


@pytest.mark.e2e
def test_a_second_run_at_once_is_refused_and_metadata_stays_consistent(first, killed, concurrent):
    assert sorted(r["rc"] for r in concurrent["results"]) == [0, 2], [
        (r["rc"], r["stderr"][-2000:]) for r in concurrent["results"]
    ]
    winner, loser = concurrent["winner"], concurrent["loser"]
    message = loser["stderr"].strip()
    assert len(message.splitlines()) == 1, message
    # The holder named is the live winner, not the killed run whose line was in the lock file.
    assert re.fullmatch(
        rf"sparse-ae: error: pipeline root {re.escape(first['pipeline_root'])} is in use by another run "
        rf"\(pid {winner['pid']} on {re.escape(socket.gethostname())}, started \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\); "
        r"wait for it to finish, or set another pipeline_root",
        message,
    ), message
    assert "started" not in loser["stdout"]  # refused before any component
    assert concurrent["runs_after"] == concurrent["runs_before"] + 1  # only the winner's run is recorded
    store = open_store(first["metadata"], writable=True)  # opens read-write: not corrupted
    assert latest_run_id(store, first["name"]) == concurrent["summary"].run_id


# TensorFlow's C++ logging: "2026-12-02 12:37:54.832280: E external/..." (TF 2.16), or absl's
# "E0000 00:00:..." (newer TensorFlow).
TF_CPP_LINE = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |[IWEF]\d{4} )", re.M)
LIBRARY_CHATTER = (
    "cuDNN",
    "cuFFT",
    "cuBLAS",
    "Discarding unparseable args",
    "No semi_persistent_directory",
    "FutureWarning",
    "Retrying",
)


@pytest.mark.e2e
@pytest.mark.slow
def test_the_terminal_shows_the_run_and_the_run_log_holds_the_libraries(first, concurrent):
    """A whole run's terminal output (the rerun that won): progress, Keras's epochs, the summary and
    the path of the run's log file; TensorFlow's C++ lines, Beam's and Google's chatter are in that file.
    Then `sparse-ae models` quiet and --verbose: the same command shows them only when asked to."""
    winner, summary = concurrent["winner"], concurrent["summary"]
    terminal = winner["stdout"] + winner["stderr"]
    assert not TF_CPP_LINE.search(terminal), TF_CPP_LINE.search(terminal).group(0)
    assert not [word for word in LIBRARY_CHATTER if word in terminal], terminal[-3000:]
    assert "Trainer started" in winner["stdout"] and "Epoch 2/2" in winner["stdout"]
    assert f"Run {summary.run_id} on garment_shapes/small" in winner["stdout"]
    log_name = re.sub(r"[^A-Za-z0-9._-]", "_", summary.run_id) + ".log"  # as the run's report folder
    log = os.path.join(first["pipeline_root"], "logs", log_name)
    assert f"Log: {log} (library messages; --verbose shows them on the terminal)" in winner["stdout"].splitlines()
    text = open(log).read()
    assert TF_CPP_LINE.search(text)  # what TensorFlow's C++ code wrote at import
    assert "Component Trainer is running." in text and "FutureWarning" in text
    # Beam ran the chosen mode on its FnApiRunner: no attempt at the Prism runner it would download.
    assert "--runner=FnApiRunner" in text and "PrismRunner" not in text

    args = ["models", "--pipeline-root", first["pipeline_root"], "--set", f"serving_dir={first['serving']}"]
    quiet = run_cli(*args, timeout=600)
    live = int(os.path.basename(summary.pushed_path))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert f"  Live: version {live} (model " in quiet.stdout  # in words, not a bare '*'
    verbose = run_cli("--verbose", *args, timeout=600)
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout
    assert TF_CPP_LINE.search(verbose.stderr) and "FutureWarning" in verbose.stderr, verbose.stderr[-2000:]


@pytest.mark.e2e
def test_staging_folders_of_killed_pushes_are_never_versions_and_are_cleaned_up(first, concurrent):
    leftovers = concurrent["leftovers"]
    assert concurrent["versions_with_leftovers"] == [concurrent["v1"]]
    assert leftovers["dead"] not in concurrent["entries_after"]  # removed by the winner's push
    assert leftovers["other_host"] in concurrent["entries_after"]  # maybe still copying: left alone
    assert all(
        not name.startswith(STAGING_PREFIX) or name == leftovers["other_host"] for name in concurrent["entries_after"]
    )


@pytest.mark.e2e
def test_an_unwritable_serving_directory_fails_the_push_cleanly(first, unwritable):
    assert unwritable["rc"] == 1, unwritable["stderr"][-3000:]
    last = unwritable["stderr"].strip().splitlines()[-1]
    assert last.endswith(
        f"could not publish the model to {unwritable['bad_serving']}: Not a directory: "
        f"{unwritable['bad_serving']} (the versions already there are untouched)"
    ), last
    found = states(unwritable["summary"])
    assert found["Trainer"] == "cached" and found["Evaluator"] == "complete" and found["ServingPusher"] == "failed"
    assert unwritable["summary"].blessed is True and unwritable["summary"].pushed_path is None
    assert "Pushed: no (ServingPusher failed)" in unwritable["stdout"]
    assert unwritable["serving_after"] == unwritable["serving_before"]
    assert unwritable["pushes_after"] == unwritable["pushes_before"]


@pytest.mark.e2e
def test_disk_full_during_the_push_fails_cleanly(first, concurrent, disk_full):
    assert disk_full["rc"] == 1, disk_full["stderr"][-3000:]
    last = disk_full["stderr"].strip().splitlines()[-1]
    # The Pusher archives the model into its PushedModel (in the pipeline root) before publishing:
    # the write fails there, so nothing reaches serving without a record.
    archive = os.path.join(first["pipeline_root"], "ServingPusher", "pushed_model")
    assert f"could not archive the model into {archive}/" in last and ": File too large: " in last, last
    assert last.endswith("(nothing was published; the versions already serving are untouched)")
    assert "Pipeline sparse_ae FAILED" in disk_full["stdout"]
    assert "Pushed: no (ServingPusher failed)" in disk_full["stdout"]
    found = states(disk_full["summary"])
    assert found["Trainer"] == found["Evaluator"] == "cached" and found["ServingPusher"] == "failed", found
    assert disk_full["summary"].blessed is True and disk_full["summary"].pushed_path is None
    assert disk_full["serving_after"] == disk_full["serving_before"]  # no new version, no staging left
    assert disk_full["pushes_after"] == disk_full["pushes_before"]  # no PushedModel claims a push


def _fake_saved_model(path: str) -> str:
    os.makedirs(os.path.join(path, "variables"))
    open(os.path.join(path, "saved_model.pb"), "wb").write(b"graph")
    open(os.path.join(path, "variables", "variables.data-00000-of-00001"), "wb").write(os.urandom(4096))
    return path


def test_publish_removes_only_staging_folders_whose_process_is_gone(tmp_path):
    base, host = str(tmp_path / "serving"), socket.gethostname()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    names = {
        "gone": f"{STAGING_PREFIX}7-{host}-{int(gone.stdout)}",
        "alive": f"{STAGING_PREFIX}8-{host}-{os.getpid()}",
        "legacy": f"{STAGING_PREFIX}9",
    }
    for name in names.values():
        os.makedirs(os.path.join(base, name))
    open(os.path.join(base, "12"), "w").write("a file, not a version")
    assert serving_versions(base) == []
    assert remove_stale_staging(base) == [names["gone"]]
    path = publish(_fake_saved_model(str(tmp_path / "model")), base, version=20)
    assert serving_versions(base) == [20] and tree(path) == tree(str(tmp_path / "model"))
    assert sorted(os.listdir(base)) == sorted(["12", "20", f"{ISSUED_PREFIX}20", names["alive"], names["legacy"]])


def test_publish_failure_names_the_folder_and_the_os_error_and_leaves_no_staging(tmp_path):
    base = str(tmp_path / "serving")
    publish(_fake_saved_model(str(tmp_path / "model")), base, version=1)
    with pytest.raises(
        PublishError,
        match=rf"could not publish the model to {re.escape(base)}: "
        r"no SavedModel folder: .*missing",
    ):
        publish(str(tmp_path / "missing"), base)
    assert sorted(os.listdir(base)) == [f"{ISSUED_PREFIX}1", "1"] and issued_version(base) == 1  # its number not taken
    assert os.path.isfile(os.path.join(base, "1", "saved_model.pb"))
    with pytest.raises(PublishError, match="File exists|Directory not empty"):
        publish(str(tmp_path / "model"), base, version=1)  # never replaces a published version
    assert sorted(os.listdir(base)) == [f"{ISSUED_PREFIX}1", "1"]


def test_a_deleted_or_recorded_version_number_is_never_issued_again(tmp_path, monkeypatch):
    """The clock stands still (two publications within one second, or a clock behind the last
    push's): a version deleted by hand, or one ML Metadata records, never gets its number back."""
    monkeypatch.setattr(serving_dir, "_now_s", lambda: 1000)
    model, base = _fake_saved_model(str(tmp_path / "model")), str(tmp_path / "serving")
    first = publish(model, base)
    assert os.path.basename(first) == "1000"
    shutil.rmtree(first)  # deleted by hand
    assert publish(model, base) == os.path.join(base, "1001")
    assert publish(model, base, recorded=[1005, 7]) == os.path.join(base, "1006")  # ML Metadata's pushes
    shutil.rmtree(base)  # the whole folder emptied: only ML Metadata remembers
    assert publish(model, base, recorded=[1006]) == os.path.join(base, "1007")
    assert serving_versions(base) == [1007] and sorted(os.listdir(base)) == [f"{ISSUED_PREFIX}1007", "1007"]
