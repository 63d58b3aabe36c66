"""README.md stays true: the generated configuration reference, the architecture diagram, the experiments."""
import difflib
import json
import os
import re
import subprocess
import sys

import pytest

from pipeline import config_reference
from pipeline_config import config_keys, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


@pytest.fixture(scope="module")
def readme() -> str:
    return open(README, encoding="utf-8").read()


def test_configuration_reference_is_up_to_date(readme):
    committed, generated = config_reference.committed(readme), config_reference.render()
    if committed != generated:
        diff = "\n".join(list(difflib.unified_diff(committed.splitlines(), generated.splitlines(), "README.md",
                                                   "generated", lineterm=""))[:40])
        pytest.fail(f"README.md's configuration reference is out of date: run `make docs`\n{diff}")


def test_configuration_reference_lists_every_key_with_its_default():
    reference = config_reference.render()
    for key in config_keys():
        assert f"| `{key}` |" in reference, key
    assert "| `model.sparsity_target` | float | `0.05` | > 0.0 and < 1.0 |" in reference
    assert "| `gate.baseline` | str | `live` | `live`, `latest_blessed` |" in reference
    assert "| `dataset.split_mapping` | map str → str | `{\"train\": \"train\", \"test\": \"eval\"}` |" in reference
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


def test_check_mode_reports_an_outdated_readme(tmp_path, readme):
    stale = tmp_path / "README.md"
    stale.write_text(readme.replace("| `model.latent_dim` | int | `64` |", "| `model.latent_dim` | int | `32` |"))
    assert config_reference.main(["--readme", str(stale), "--check"]) == 1
    assert config_reference.main(["--readme", str(stale)]) == 0
    assert config_reference.main(["--readme", str(stale), "--check"]) == 0
    assert stale.read_text() == config_reference.replace_between_markers(readme, config_reference.render())


# An edge with an artifact label: `A -->|Examples| B`, `A -.->|"Model, ModelBlessing"| B`.
_EDGE = re.compile(r'^\s*(\w+)\s*-[-.]*->\|"?([^|"]+)"?\|\s*(\w+)\s*$')


def test_architecture_diagram_draws_the_pipeline_as_wired(readme):
    from pipeline.pipeline import create_pipeline

    diagram = readme.split("```mermaid\n", 1)[1].split("```", 1)[0]
    # every component, the optional ones too
    pipeline = create_pipeline(load_config(["tuner.enabled=true", "scoring.bulk_inference=true"]))
    ids = {component.id for component in pipeline.components}
    wired = {(channel.producer_component_id, component.id, channel.type_name)
             for component in pipeline.components for channel in component.inputs.values()
             if getattr(channel, "producer_component_id", None)}
    drawn = {match.groups()[::2] + (match.group(2),) for match in map(_EDGE.match, diagram.splitlines()) if match}
    drawn = {edge for edge in drawn if edge[0] in ids and edge[1] in ids}
    assert drawn == wired, f"drawn but not wired: {drawn - wired}; wired but not drawn: {wired - drawn}"
    for component in pipeline.components:
        assert re.search(rf"^\s*{component.id}\b", diagram, re.M), f"component {component.id} is not a node"
        for channel in component.outputs.values():
            assert channel.type_name in diagram, f"{component.id}'s output {channel.type_name} is not drawn"


def test_every_experiment_command_is_documented(readme):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "experiments.py"), "--dry-run"],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    commands = result.stdout.strip().splitlines()
    assert len(commands) == 4
    for command in commands:
        assert command in readme, f"README.md lacks the experiment command: {command}"


@pytest.mark.slow  # trains in a subprocess
def test_experiment_results_come_from_metrics_json(garment_data_dir, tmp_path):
    """One experiment for real (small, 1 epoch): its row in results.md is its metrics.json."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "experiments.py"), "--only", "rho_0.02",
                             "--dataset", "garment_shapes/small", "--data-dir", garment_data_dir, "--epochs", "1",
                             "--output", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.load(open(tmp_path / "rho_0.02" / "metrics.json"))
    assert metrics["config"]["sparsity_target"] == 0.02 and metrics["epochs_run"] == 1
    row = next(line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| rho_0.02 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[3:] == [f"{metrics['final_val_psnr']:.2f}", f"{metrics['final_val_recon_loss']:.4f}",
                         f"{metrics['final_val_kl_penalty']:.3f}", f"{metrics['final_val_mean_activation']:.4f}", "0.02"]
