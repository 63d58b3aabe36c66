"""The notebook tour runs: executed with nbclient in this environment's Python, on garment_shapes/small."""

import html
import json
import os
import re
import sys

import nbformat
import pytest

from pipeline.report.render import DATA_FILE, FIGURES, HTML_FILE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "sparse_autoencoder_tfx.ipynb")
KERNEL = "sparse-ae-test"


def _parameters_index(notebook) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    return tagged[0]


def _kernel_manager(kernels_dir: str):
    """A kernel running this interpreter (the venv's), whatever kernels a global Jupyter knows."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = os.path.join(kernels_dir, KERNEL)
    os.makedirs(spec_dir, exist_ok=True)
    with open(os.path.join(spec_dir, "kernel.json"), "w") as handle:
        json.dump(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "sparse-ae tests",
                "language": "python",
            },
            handle,
        )
    specs = KernelSpecManager(kernel_dirs=[kernels_dir], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def _latest_run(out):
    """The latest run recorded in the notebook's pipeline root (the pipeline's default name)."""
    from pipeline.run_summary import summarize_run

    return summarize_run(str(out / "pipeline_root" / "metadata.sqlite"), "sparse_ae")


def _text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", []) if output.output_type == "stream")


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    _parameters_index(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "clear the notebook's outputs before committing"


@pytest.fixture(scope="module")
def executed(garment_data_dir, tmp_path_factory):
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    work = tmp_path_factory.mktemp("notebook")
    # Papermill's convention: a cell after the one tagged "parameters" overrides its values.
    overrides = (
        f"DATASET = 'garment_shapes/small'\nEPOCHS = 1\nDATA_DIR = {garment_data_dir!r}\n"
        f"WORK_DIR = {str(work / 'out')!r}\nDOWNLOAD = False"
    )
    notebook.cells.insert(
        _parameters_index(notebook) + 1,
        nbformat.v4.new_code_cell(overrides, metadata={"tags": ["injected-parameters"]}),
    )
    client = NotebookClient(
        notebook, km=_kernel_manager(str(work / "kernels")), timeout=600, resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, when a cell fails
    return notebook, work / "out"


@pytest.mark.e2e
def test_every_cell_ran(executed):
    notebook, _ = executed
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source


@pytest.mark.e2e
def test_standalone_training_and_reconstructions(executed):
    notebook, out = executed
    text = "\n".join(_text(cell) for cell in notebook.cells)
    psnr = float(re.search(r"final val PSNR ([\d.]+) dB", text).group(1))
    metrics = json.load(open(out / "standalone" / "metrics.json"))
    assert metrics["epochs_run"] == 1 and abs(psnr - metrics["final_val_psnr"]) < 0.01
    assert "rejected: sparsity_target=1.5" in text
    assert (out / "standalone" / "reconstructions.png").read_bytes()[:4] == b"\x89PNG"
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # training curves and the reconstruction grid, at least


@pytest.mark.e2e
def test_pipeline_ran_and_its_evaluation_is_shown(executed):
    notebook, out = executed
    text = "\n".join(_text(cell) for cell in notebook.cells)
    for component in ("TFDSExampleGen", "Trainer", "Evaluator", "ServingPusher"):
        assert f"{component} finished" in text
    assert "TFMA validation ok:" in text
    # ML Metadata records the run the notebook started, every component finished, with an evaluation.
    summary = _latest_run(out)
    states = dict(summary.components)
    assert not summary.failed and {"TFDSExampleGen", "Trainer", "Evaluator", "ServingPusher"} <= set(states)
    assert all(state == "complete" for state in states.values()), states
    assert summary.psnr is not None and summary.example_count == 500 and summary.blessed is not None


@pytest.mark.e2e
def test_report_is_written(executed):
    notebook, out = executed
    text = "\n".join(_text(cell) for cell in notebook.cells)
    report = re.search(r"report: (\S+)", text).group(1)
    folder = os.path.dirname(report)
    assert report == os.path.join(folder, HTML_FILE)
    assert folder.startswith(str(out / "pipeline_root" / "reports") + os.sep)
    assert sorted(os.listdir(folder)) == sorted([HTML_FILE, DATA_FILE, *FIGURES.values()])
    # The report is the notebook's run's, and says what ML Metadata recorded for it.
    summary = _latest_run(out)
    data = json.load(open(os.path.join(folder, DATA_FILE)))
    assert data["run_id"] == summary.run_id
    assert data["verdict"]["status"] == ("blessed" if summary.blessed else "not-blessed")
    assert sorted(row["label"] for row in data["class_psnr"]) == list(range(10))
    assert data["statistics"]["train"]["examples"] == 2000 and data["statistics"]["eval"]["examples"] == 500
    page = open(report).read()
    assert html.escape(data["verdict"]["headline"], quote=False) in page
    for figure in FIGURES.values():
        assert f'src="{figure}"' in page
