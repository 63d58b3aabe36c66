"""The quiet terminal (sparse_ae/quiet.py) in a real process: what native code, subprocesses and
Python's warnings and logging write goes to the log file; the command's own lines and errors to
the terminal. Fast: no TensorFlow import (the pipeline run's terminal is checked in test_faults)."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import logging, os, subprocess, sys, warnings
    from sparse_ae.quiet import QuietTerminal

    verbose, run_log, status = sys.argv[1] == "verbose", sys.argv[2], int(sys.argv[3])
    with QuietTerminal(verbose) as terminal:
        os.write(2, b"E0000 00:00:1 cuda_dnn.cc] Unable to register cuDNN factory (native code on fd 2)\\n")
        worker = "import sys; sys.stderr.write('Discarding unparseable args\\\\n')"  # a Beam worker
        subprocess.run([sys.executable, "-c", worker])
        warnings.warn("Python 3.10 support ends", FutureWarning)
        logging.getLogger("apache_beam").info("a library's info record")
        logging.getLogger("tfx").error("a library's error record")
        print("our progress line")
        print("sparse-ae: error: our one-line message", file=sys.stderr)
        if run_log != "-":
            print("attached to", terminal.attach(run_log))
            os.write(2, b"W0000 after attaching\\n")
        terminal.failed = status not in (0, 2)
    print("temporary log:", terminal.path)
""")

LIBRARY = [
    "Unable to register cuDNN factory",
    "Discarding unparseable args",
    "FutureWarning: Python 3.10 support ends",
    "a library's info record",
    "a library's error record",
]


def run(mode: str, run_log: str = "-", status: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, run_log, str(status)], capture_output=True, text=True, env=env, timeout=120
    )


def test_quiet_sends_library_output_to_a_run_log_and_keeps_ours_on_the_terminal(tmp_path):
    run_log = tmp_path / "root" / "logs" / "run.log"
    result = run("quiet", str(run_log))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "ERROR tfx: a library's error record",
        "sparse-ae: error: our one-line message",
    ]
    assert result.stdout.splitlines()[:2] == ["our progress line", f"attached to {run_log}"]
    log = run_log.read_text()
    for line in LIBRARY + ["W0000 after attaching"]:
        assert line in log, line
    assert "our progress line" not in log and "our one-line message" not in log
    temporary = result.stdout.splitlines()[-1].removeprefix("temporary log: ")
    assert temporary == str(run_log)  # the temporary file became the run's log


def test_without_a_run_folder_the_temporary_log_is_removed_after_success_and_kept_after_failure():
    success = run("quiet")
    temporary = success.stdout.splitlines()[-1].removeprefix("temporary log: ")
    assert not os.path.exists(temporary)
    assert "library messages of this command" not in success.stderr
    failure = run("quiet", status=1)
    temporary = failure.stdout.splitlines()[-1].removeprefix("temporary log: ")
    try:
        assert f"library messages of this command: {temporary}" in failure.stderr
        assert "Unable to register cuDNN factory" in open(temporary).read()
    finally:
        os.remove(temporary)
    bad_input = run("quiet", status=2)  # one line of ours says it all
    assert "library messages" not in bad_input.stderr


def test_verbose_shows_everything_on_the_terminal():
    result = run("verbose")
    assert result.returncode == 0
    for line in LIBRARY + ["our one-line message"]:
        assert line in result.stderr, line
    assert result.stdout.splitlines()[-1] == "temporary log: None"
