"""README.md and docs/ stay true: the README short and linking every page, the generated configuration
reference, the architecture diagram, the experiments, and every documented command (scripts/check_docs.py)."""

import difflib
import glob
import json
import os
import re
import subprocess
import sys

import pytest
from helpers import check_docs_module

from pipeline import config_reference
from pipeline_config import config_keys, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
CONFIGURATION = os.path.join(ROOT, "docs", "configuration.md")
EXPERIMENTS = os.path.join(ROOT, "docs", "experiments.md")
README_LIMIT = 8 * 1024  # bytes: a README read in one sitting; the rest lives in docs/


@pytest.fixture(scope="module")
def readme() -> str:
    return open(README, encoding="utf-8").read()


@pytest.fixture(scope="module")
def configuration_page() -> str:
    return open(CONFIGURATION, encoding="utf-8").read()


@pytest.fixture(scope="module")
def check_docs():
    return check_docs_module()


def test_readme_is_short():
    size = os.path.getsize(README)
    assert size < README_LIMIT, f"README.md is {size} bytes, over {README_LIMIT}: move detail into docs/"


def test_readme_links_every_docs_page(readme):
    pages = sorted(os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    assert len(pages) >= 9, pages
    unlinked = [page for page in pages if f"]({page})" not in readme]
    assert not unlinked, f"README.md does not link {unlinked}"
    assert "](sparse_ae/datasets/garment_shapes.md)" in readme  # the dataset's notes, beside its builder


def test_readme_test_command_is_what_ci_runs(readme):
    first_commands = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_commands.splitlines()] == ["make demo", "make test"]
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert re.search(r"^\s*make\b[^#\n]*\btest\b", ci, re.M), ".ci/run must run the README's test command"


def test_every_documented_command_and_link_is_valid(check_docs):
    """Every command in a bash/console block of README.md and docs/ parses with the real CLI and config,
    every make target exists, every module and file is there, every relative link resolves."""
    files = check_docs.doc_files()
    assert os.path.join(ROOT, "docs", "running-at-scale.md") in files
    findings = [finding for path in files for finding in check_docs.check_file(path)]
    assert not findings, "documented commands or links that do not work:\n" + "\n".join(findings)


def test_machine_timings_are_quoted_only_in_the_benchmarks_page(check_docs):
    """docs/benchmarks.md is the one place for timings of one machine: no other page, the Makefile, nor a
    comment or docstring of the code quotes one."""
    findings = check_docs.check_timings()
    assert not findings, "timings outside docs/benchmarks.md (move them there and link):\n" + "\n".join(findings)


def test_the_timing_check_finds_figures_in_pages_and_comments_but_not_settings(check_docs, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "sparse_ae").mkdir()
    (tmp_path / "README.md").write_text("Setup takes about 40 s here.\nAirflow's default 30 s is too short.\n")
    (tmp_path / "docs" / "benchmarks.md").write_text("The demo: 1 min 39 s.\n")
    (tmp_path / "Makefile").write_text("test:  # 8 minutes on 2 cores\n\tpytest\n")
    (tmp_path / "pipeline_config.py").write_text('"""Config."""\n')
    (tmp_path / "sparse_ae" / "model.py").write_text(
        '"""The model; its first fit took 1.5 s."""\n\nTIMEOUT_S = 600  # a limit, no unit\nx = 1  # 20 ms a batch\n'
    )
    assert check_docs.check_timings(str(tmp_path)) == [
        "README.md:1: 40 s: a machine timing outside docs/benchmarks.md",
        "Makefile:1: 8 minutes: a machine timing outside docs/benchmarks.md",
        "sparse_ae/model.py:4: 20 ms: a machine timing outside docs/benchmarks.md",
        "sparse_ae/model.py:1: 1.5 s: a machine timing outside docs/benchmarks.md",
    ]


@pytest.mark.parametrize(
    "command, problem",
    [
        ("sparse-ae train --dataset garment_shapes/small --output out/ --no-such-flag", "parser refuses"),
        ("sparse-ae pipeline run --set model.sparsity=0.1", "unknown key"),
        ("sparse-ae pipeline run --set model.sparsity_target=1.5", "less than 1"),
        ("sparse-ae train --output out/ --set sparsity_target=0.02", "did you mean model.sparsity_target"),
        ("sparse-ae models --set serving_dir=x --pipeline-root x", "conflict"),
        ("sparse-ae tune --set tuner.max_trials=0", "greater than 0"),
        ("make no-such-target", "no Makefile target"),
        ("make demo ARGS='--set model.epochs=0'", "greater than 0"),
        ("python -m pipeline.no_such_module", "no module"),
        ("python scripts/no_such_script.py", "no file"),
        ("frobnicate --all", "no rule for the command"),
    ],
)
def test_the_command_check_catches_drift(check_docs, command, problem):
    import shlex

    findings = check_docs.check_command(shlex.split(command))
    assert findings and problem in " ".join(findings), findings


def test_the_command_check_reads_blocks_and_python(check_docs, tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[here](#page) [gone](missing.md)\n\n```console\n$ sparse-ae pipeline run \\\n"
        "  --set gate.psnr_threshold=abc\nFailed: output, not a command\n```\n\n"
        "```text\nfrobnicate\n```\n\n"
        "```bash\nexport A=1 && make docs   # a comment\n```\n\n"
        "```python\nfrom sparse_ae.inference import load_model, no_such_name\n```\n"
    )
    findings = check_docs.check_file(str(page))
    assert len(findings) == 3, findings
    assert "missing.md" in findings[0] and ":6:" in findings[1] and "valid number" in findings[1]
    assert "defines no no_such_name" in findings[2]


def test_configuration_reference_is_up_to_date(configuration_page):
    committed, generated = config_reference.committed(configuration_page), config_reference.render()
    if committed != generated:
        diff = "\n".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(), generated.splitlines(), "docs/configuration.md", "generated", lineterm=""
                )
            )[:40]
        )
        pytest.fail(f"docs/configuration.md's configuration reference is out of date: run `make docs`\n{diff}")
    assert config_reference.PAGE == CONFIGURATION


def test_configuration_reference_lists_every_key_with_its_default():
    reference = config_reference.render()
    for key in config_keys():
        assert f"| `{key}` |" in reference, key
    assert "| `model.sparsity_target` | float | `0.05` | > 0.0 and < 1.0 |" in reference
    assert "| `gate.baseline` | str | `live` | `live`, `latest_blessed` |" in reference
    assert '| `dataset.split_mapping` | map str → str | `{"train": "train", "test": "eval"}` |' in reference
    # Placeholders are code, else Markdown takes <pipeline_root> for an HTML tag and drops it.
    assert "none: `<pipeline_root>/metadata.sqlite`." in reference


def test_every_field_needs_a_description():
    from sparse_ae.config import StrictModel

    class Undocumented(StrictModel):
        size: int = 3

    with pytest.raises(ValueError, match="Undocumented.size has no description"):
        config_reference.render(Undocumented)


def test_defaults_under_home_or_here_are_symbolic():
    assert config_reference.render_value(os.path.join(os.getcwd(), "pipeline_roots", "x")) == "./pipeline_roots/x"
    assert config_reference.render_value(os.path.expanduser("~/tensorflow_datasets")) == "~/tensorflow_datasets"


def test_check_mode_reports_an_outdated_page(tmp_path, configuration_page):
    stale = tmp_path / "configuration.md"
    stale.write_text(
        configuration_page.replace("| `model.latent_dim` | int | `64` |", "| `model.latent_dim` | int | `32` |")
    )
    assert config_reference.main(["--page", str(stale), "--check"]) == 1
    assert config_reference.main(["--page", str(stale)]) == 0
    assert config_reference.main(["--page", str(stale), "--check"]) == 0
    expected = config_reference.replace_between_markers(configuration_page, config_reference.render())
    assert stale.read_text() == expected


# An edge with an artifact label: `A -->|Examples| B`, `A -.->|"Model, ModelBlessing"| B`.
_EDGE = re.compile(r'^\s*(\w+)\s*-[-.]*->\|"?([^|"]+)"?\|\s*(\w+)\s*$')


@pytest.mark.slow  # imports TFX to build the pipeline (about a minute on 2 shared cores)
def test_architecture_diagram_draws_the_pipeline_as_wired(readme):
    from pipeline.pipeline import create_pipeline

    diagram = readme.split("```mermaid\n", 1)[1].split("```", 1)[0]
    # every component, the optional ones too
    pipeline = create_pipeline(load_config(["tuner.enabled=true", "scoring.bulk_inference=true"]))
    ids = {component.id for component in pipeline.components}
    wired = {
        (channel.producer_component_id, component.id, channel.type_name)
        for component in pipeline.components
        for channel in component.inputs.values()
        if getattr(channel, "producer_component_id", None)
    }
    drawn = {match.groups()[::2] + (match.group(2),) for match in map(_EDGE.match, diagram.splitlines()) if match}
    drawn = {edge for edge in drawn if edge[0] in ids and edge[1] in ids}
    assert drawn == wired, f"drawn but not wired: {drawn - wired}; wired but not drawn: {wired - drawn}"
    for component in pipeline.components:
        assert re.search(rf"^\s*{component.id}\b", diagram, re.M), f"component {component.id} is not a node"
        for channel in component.outputs.values():
            assert channel.type_name in diagram, f"{component.id}'s output {channel.type_name} is not drawn"


def test_every_experiment_command_is_documented():
    page = open(EXPERIMENTS, encoding="utf-8").read()
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "experiments.py"), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    commands = result.stdout.strip().splitlines()
    assert len(commands) == 4
    for command in commands:
        assert command in page, f"docs/experiments.md lacks the experiment command: {command}"


@pytest.mark.slow  # trains for real (one epoch on garment_shapes/small)
def test_experiment_results_come_from_metrics_json(garment_data_dir, tmp_path):
    """One experiment for real (small, 1 epoch): its row in results.md is its metrics.json."""
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "experiments.py"),
            "--only",
            "rho_0.02",
            "--dataset",
            "garment_shapes/small",
            "--data-dir",
            garment_data_dir,
            "--epochs",
            "1",
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.load(open(tmp_path / "rho_0.02" / "metrics.json"))
    assert metrics["config"]["sparsity_target"] == 0.02 and metrics["epochs_run"] == 1
    row = next(line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| rho_0.02 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[3:] == [
        f"{metrics['final_val_psnr']:.2f}",
        f"{metrics['final_val_recon_loss']:.4f}",
        f"{metrics['final_val_kl_penalty']:.3f}",
        f"{metrics['final_val_mean_activation']:.4f}",
        "0.02",
        f"{metrics['code_sparsity']['active_units']:.1f}",
        f"{metrics['code_sparsity']['hoyer']:.2f}",
        f"{metrics['code_sparsity']['zeroing_cost']:.2f}",
    ]
