"""One workspace (issue 26): every bad argument is one line and exit status 2 before any work,
commands find their pipeline from the project folder's settings file, and refuse to act on a
serving folder the pipeline never pushed to.

The CLI's own main() runs in this process (as in tests/test_bad_input.py) with the project folder
as the working directory; the settings file is the one conftest points SPARSE_AE_SETTINGS at.
"""

import os

import pytest

from pipeline.cli import main


def exit_status(argv: list) -> int:
    """main()'s status, or the one argparse exits with."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


# --- Case 3 and 4: bad names and flags, one line, exit 2, nothing created.

BAD_ARGUMENTS = [
    (["train", "--dataset", "garment_shapes/tiny", "--output", "x"], "garment_shapes has no config 'tiny'"),
    (["score", "--dataset", "garment_shapes/smal", "--output", "s.csv"], "(did you mean small?)"),
    (["train", "--dataset", "garment_shape/small", "--output", "x"], "(did you mean garment_shapes?)"),
    (["pipeline", "run", "--dataset", "garment_shape/small"], "(did you mean garment_shapes?)"),
    (["pipeline", "run", "--set", "dataset.name=garment_shapes/tiny"], "has no config 'tiny' (its configs: "),
    (["prepare", "--dataset", "fashion_mnst"], "(did you mean fashion_mnist?)"),
    (["pipeline", "run", "--datset", "garment_shapes/small"], "(did you mean --dataset?)"),
    (["models", "--pipline-root", "x"], "(did you mean --pipeline-root?)"),
]


@pytest.mark.parametrize("argv, fragment", BAD_ARGUMENTS, ids=[" ".join(argv[:3]) for argv, _ in BAD_ARGUMENTS])
def test_bad_argument_is_one_line_exit_2_before_any_work(tmp_path, monkeypatch, capsys, argv, fragment):
    monkeypatch.chdir(tmp_path)
    status = exit_status(argv)
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("sparse-ae"), err
    assert fragment in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []  # no pipeline root, no serving folder, no settings file


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_and_verbose_anywhere_keep_the_exit_status(tmp_path, monkeypatch, capsys, where):
    """--debug adds the traceback to a config error; the status stays 2 wherever the flag is."""
    monkeypatch.chdir(tmp_path)
    command = ["pipeline", "run", "--set", "model.latent_dim=0"]
    argv = ["--debug", *command] if where == "before" else [*command, "--debug"]
    status = exit_status(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" in err and err.splitlines()[-1].startswith("sparse-ae: error: model.latent_dim=0")
    status = exit_status(
        ["models", "--verbose", "--pipeline-root", "nowhere"]
        if where == "after"
        else ["--verbose", "models", "--pipeline-root", "nowhere"]
    )
    err = capsys.readouterr().err
    assert status == 2 and err.splitlines()[-1].startswith("sparse-ae: error: "), err
    assert os.listdir(tmp_path) == []
