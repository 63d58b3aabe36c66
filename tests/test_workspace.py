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


# --- Case 1 and 2: after a run in a project folder, the commands act on its pipeline.


@pytest.fixture(scope="module")
def project(garment_data_dir, tmp_path_factory):
    """A project folder whose two `sparse-ae pipeline run`s (relative roots, as `make demo`) wrote its
    settings file: model 1 blessed and pushed to ./serving, then a model refused by the gate."""
    from helpers import LENIENT_GATE, set_args, small_pipeline_overrides

    from sparse_ae.workspace import SETTINGS_ENV

    folder = tmp_path_factory.mktemp("project")
    overrides = [
        o for o in small_pipeline_overrides(folder, garment_data_dir) if not o.startswith(("pipeline_root", "serving"))
    ]
    common = ["--set", "pipeline_root=root", "--set", "serving_dir=serving", *set_args(overrides)]
    common += set_args(["model.hidden_dims=64", "model.latent_dim=16"])
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.delenv(SETTINGS_ENV)
        assert main(["pipeline", "run", *common, *set_args(LENIENT_GATE)]) == 0
        assert (
            main(["pipeline", "run", *common, *set_args(["model.seed=7", "gate.psnr_threshold=99"])]) == 0
        )  # refused: not a failure
    return folder


@pytest.fixture
def in_project(project, monkeypatch):
    """The working directory is the project folder, and its settings file the one commands read."""
    from sparse_ae.workspace import SETTINGS_ENV

    monkeypatch.chdir(project)
    monkeypatch.delenv(SETTINGS_ENV)
    return project


@pytest.mark.e2e  # reads the project's pipeline run
def test_pipeline_run_writes_the_settings_file_with_what_it_used(in_project, garment_data_dir):
    import json

    assert json.load(open(in_project / "sparse-ae.json")) == {
        "dataset.data_dir": garment_data_dir,
        "dataset.name": "garment_shapes/small",
        "pipeline_name": "sparse_ae",
        "pipeline_root": "root",
        "serving_dir": "serving",
    }


@pytest.mark.e2e  # reads the project's pipeline run
def test_models_without_flags_shows_the_projects_pipeline(in_project, capsys):
    assert exit_status(["models"]) == 0
    out = capsys.readouterr().out
    assert f"Serving directory {in_project / 'serving'}" in out
    assert "Live: version" in out and "Live: none" not in out
    assert f"ML Metadata {in_project / 'root' / 'metadata.sqlite'}" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["promote", "2", "--reason", "try it", "--serving-dir", "elsewhere"],
        ["rollback", "--reason", "back", "--set", "serving_dir=elsewhere"],
        ["models", "--serving-dir", "elsewhere"],
        ["score", "--images", "incoming", "--output", "s.csv", "--serving-dir", "elsewhere"],
        ["pipeline", "run", "--serving-dir", "elsewhere"],
    ],
    ids=["promote", "rollback", "models", "score", "pipeline-run"],
)
@pytest.mark.e2e  # reads the project's pipeline run
def test_a_serving_folder_the_pipeline_never_pushed_to_is_refused_naming_both(in_project, capsys, argv):
    status = exit_status(argv)
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1, err
    assert f"pushes its models to {in_project / 'serving'}, not to --serving-dir {in_project / 'elsewhere'}" in err
    assert "--other-serving-dir" in err
    assert not (in_project / "elsewhere").exists()


@pytest.mark.e2e  # reads the project's pipeline run
def test_other_serving_dir_says_it_is_meant(in_project, capsys):
    assert exit_status(["models", "--serving-dir", "elsewhere", "--other-serving-dir"]) == 0
    assert "Live: none" in capsys.readouterr().out


@pytest.mark.e2e  # reads the project's pipeline run
def test_report_without_flags_writes_the_projects_latest_run(in_project, capsys):
    assert exit_status(["report", "--output", "report"]) == 0
    assert capsys.readouterr().out.strip() == "report/report.html"
    assert "garment_shapes/small" in (in_project / "report" / "report.html").read_text()


@pytest.mark.e2e  # reads the project's pipeline run
def test_library_commands_read_the_dataset_from_the_settings_file(in_project, garment_data_dir):
    from pipeline.cli import build_parser
    from sparse_ae.cli import command_config, parse

    parser, _ = build_parser()
    dataset = command_config(parse(parser, ["train", "--output", "x"])).dataset
    assert (dataset.name, dataset.data_dir) == ("garment_shapes/small", garment_data_dir)
    flags_win = command_config(parse(parser, ["train", "--output", "x", "--dataset", "garment_shapes/full"]))
    assert flags_win.dataset.name == "garment_shapes/full"


@pytest.mark.parametrize(
    "command",
    [
        ["pipeline", "run"],
        ["models"],
        ["promote", "1"],
        ["rollback"],
        ["report"],
        ["score", "--images", "f", "--output", "s.csv"],
    ],
)
def test_every_pipeline_command_takes_the_same_root_flags(command):
    from pipeline.cli import build_parser
    from pipeline.workspace import pipeline_config

    parser, _ = build_parser()
    args = parser.parse_args([*command, "--pipeline-root", "r", "--serving-dir", "s", "--set", "pipeline_name=p"])
    config = pipeline_config(args)
    assert (config.pipeline_root, config.serving_dir, config.pipeline_name) == ("r", "s", "p")


# --- Case 5: why a candidate was refused, and a promotion that shows what it replaces.


def candidates(capsys) -> dict:
    import json

    assert exit_status(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    return {c["model_id"]: c for c in listing["candidates"]}, next(v for v in listing["versions"] if v["live"])


@pytest.mark.e2e  # reads the project's pipeline run
def test_models_says_which_gate_condition_refused_a_candidate(in_project, capsys):
    found, _ = candidates(capsys)
    refused = next(c for c in found.values() if c["blessed"] is False)
    assert exit_status(["models"]) == 0
    table = capsys.readouterr().out.splitlines()
    row = next(i for i, line in enumerate(table) if line.strip().startswith(f"{refused['model_id']} "))
    assert (
        table[row + 1].strip().startswith("refused: overall: ") and "< threshold 99.000 dB (short by" in table[row + 1]
    )


@pytest.mark.e2e  # reads the project's pipeline run
def test_promote_shows_both_figures_and_asks_for_force(in_project, capsys):
    from sparse_ae.serving_layout import serving_versions

    found, live = candidates(capsys)
    refused = next(c for c in found.values() if c["blessed"] is False)
    before = serving_versions(str(in_project / "serving"))
    status = exit_status(["promote", str(refused["model_id"]), "--reason", "looks fine to me"])
    out, err = capsys.readouterr()
    assert status == 2 and serving_versions(str(in_project / "serving")) == before
    assert (
        f"Candidate: model {refused['model_id']}, eval PSNR {refused['psnr']:.2f} dB, refused by the gate\n"
        f"  Code sparsity per image: {refused['active_units']:.1f} active units, Hoyer {refused['hoyer']:.2f}" in out
    )
    assert f"Live: model {live['model_id']}, eval PSNR {found[live['model_id']]['psnr']:.2f} dB" in out
    assert err.strip().endswith("add --force to publish it anyway") and "the gate refused it" in err


# --- Case 6: scoring in the project's words, no partial files, outputs that do not collide, no fake labels.


@pytest.fixture
def incoming(in_project, garment_data_dir):
    """Two garments, a file that is no image at all and a PNG cut short, sorted in that order."""
    from PIL import Image

    from sparse_ae.data import load_images

    folder = in_project / "incoming"
    if not folder.exists():
        folder.mkdir()
        garments = load_images("garment_shapes/small", "test", garment_data_dir, download=False).take(2)
        for i, image in enumerate(garments.as_numpy_iterator()):
            Image.fromarray(image[..., 0]).save(folder / f"a_garment_{i}.png")
        (folder / "b_broken.png").write_bytes(b"GIF89a, or a text file renamed")
        whole = (folder / "a_garment_0.png").read_bytes()
        (folder / "c_cut_short.png").write_bytes(whole[: len(whole) // 2])
    return folder


@pytest.mark.e2e  # reads the project's pipeline run
def test_score_names_bad_files_in_its_own_words_and_leaves_labels_empty(in_project, incoming, capsys):
    import csv
    import json

    assert exit_status(["score", "--images", "incoming", "--output", "in.csv", "--quiet"]) == 0
    summary = json.loads((in_project / "in.csv.summary.json").read_text())
    assert summary["count"] == 2 and summary["skipped"] == 2
    assert summary["skipped_examples"][0].startswith("b_broken.png: not a PNG/JPEG image")
    assert summary["skipped_examples"][1].startswith("c_cut_short.png: a damaged PNG image")
    assert "function_node" not in capsys.readouterr().out
    rows = list(csv.DictReader(open(in_project / "in.csv")))
    assert [row["id"] for row in rows] == ["a_garment_0.png", "a_garment_1.png"]
    assert [row["label"] for row in rows] == ["", ""]


@pytest.mark.e2e  # reads the project's pipeline run
def test_two_formats_of_one_name_keep_their_own_summary_and_picture(in_project, incoming):
    import json

    import pandas as pd

    for output in ("both.csv", "both.parquet"):
        assert exit_status(["score", "--images", "incoming", "--output", output, "--quiet"]) == 0
    for output in ("both.csv", "both.parquet"):
        assert json.loads((in_project / f"{output}.summary.json").read_text())["output"] == output
        assert (in_project / f"{output}.worst.png").stat().st_size > 0
    assert pd.read_parquet(in_project / "both.parquet")["label"].isna().all()


@pytest.mark.e2e  # reads the project's pipeline run
def test_strict_leaves_no_partial_rows_file(in_project, incoming, capsys):
    argv = ["score", "--images", "incoming", "--strict", "--batch-size", "1", "--quiet", "--output", "strict.csv"]
    assert exit_status(argv) == 2  # the two garments are scored and written before the broken file stops it
    assert "b_broken.png: not a PNG/JPEG image" in capsys.readouterr().err
    assert not [name for name in os.listdir(in_project) if "strict" in name]


@pytest.mark.e2e  # reads the project's pipeline run
@pytest.mark.slow  # a `sparse-ae` process
def test_verbose_models_shows_the_libraries_without_their_import_chatter(in_project):
    """Case 7: `sparse-ae --verbose models` printed 65 of Beam's "Using Any for unsupported type" lines."""
    from helpers import run_cli

    result = run_cli("--verbose", "models", cwd=str(in_project), timeout=600)
    assert result.returncode == 0 and "  Live: version " in result.stdout, result.stderr[-2000:]
    assert "native_type_compatibility" not in result.stderr
    assert "INFO absl: MetadataStore with DB connection initialized" in result.stderr  # --verbose still shows them


# --- The newcomer's session: after a run in the project folder, every command with no extra flags
# acts on that run's pipeline. Last in this module: it promotes and rolls back.


@pytest.mark.e2e  # reads the project's pipeline run
def test_a_newcomer_session_acts_on_the_projects_pipeline_throughout(in_project, incoming, capsys):
    import json

    from sparse_ae.serving_layout import serving_versions

    serving = in_project / "serving"
    found, live = candidates(capsys)
    assert live["path"].startswith(str(serving))
    refused = next(c for c in found.values() if c["blessed"] is False)

    assert exit_status(["score", "--images", "incoming", "--output", "newcomer.csv", "--quiet"]) == 0
    scored = json.loads((in_project / "newcomer.csv.summary.json").read_text())
    assert scored["model_dir"] == str(serving / str(live["version"]))

    reason = ["--reason", "newcomer: trying the refused candidate"]
    assert exit_status(["promote", str(refused["model_id"]), *reason, "--force"]) == 0
    promoted = serving_versions(str(serving))[-1]
    assert "now live" in capsys.readouterr().out and promoted > live["version"]
    assert exit_status(["rollback", "--reason", "newcomer: back to the blessed one"]) == 0
    assert "re-published" in capsys.readouterr().out and serving_versions(str(serving))[-1] > promoted
    _, now = candidates(capsys)
    assert (now["model_id"], now["action"]) == (live["model_id"], "rollback")

    assert exit_status(["report"]) == 0
    assert capsys.readouterr().out.strip().startswith(str(in_project / "root" / "reports"))
    # Nothing went to the built-in defaults' folders.
    assert not (in_project / "pipeline_roots").exists() and not (serving / "sparse_ae").exists()
