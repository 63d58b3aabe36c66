"""Draw the report's figures and write a self-contained HTML page (plain HTML and CSS, PNGs beside it)."""

from __future__ import annotations

import json
import os

import numpy as np

from pipeline.report.content import ReportData
from sparse_ae import plots
from sparse_ae.storage import write_text

HTML_FILE = "report.html"
DATA_FILE = "report_data.json"
FIGURES = {
    "class_psnr": "class_psnr.png",
    "reconstructions": "reconstructions.png",
    "training": "training_curves.png",
    "sparsity": "code_sparsity.png",
}


def figures(data: ReportData) -> dict[str, object]:
    """The report's matplotlib Figures, keyed as FIGURES, drawn only from `data` (absent ones left out)."""
    drawn = {}
    names = [row["name"] for row in data.class_psnr]
    if data.class_psnr:
        drawn["class_psnr"] = plots.plot_class_psnr(
            names,
            [row["psnr"] for row in data.class_psnr],
            threshold=data.gate.get("psnr_threshold"),
            baseline=[row["baseline"] for row in data.class_psnr],
            class_floor=data.gate.get("class_psnr_floor"),
            overall=data.summary.psnr,
            linear=data.summary.linear_baseline_psnr,
        )
    if data.reconstructions and data.sample is not None:
        sample, evaluated = data.sample, data.summary.class_psnr

        def title(row) -> str:
            mean = f" (eval mean {evaluated[row['label']]:.1f} dB)" if row["label"] in evaluated else ""
            return f"{row['label']} {row['name']}{mean}"

        drawn["reconstructions"] = plots.plot_class_reconstructions(
            [
                (
                    title(row),
                    sample.images[row["indices"]],
                    sample.reconstructions[row["indices"]],
                    [f"{value:.1f} dB" for value in row["psnr"]],
                )
                for row in data.reconstructions
            ]
        )
    if data.training and data.training.get("history"):
        drawn["training"] = plots.plot_training_curves(data.training["history"], data.training.get("sparsity_target"))
    if data.sparsity and data.sample is not None:
        drawn["sparsity"] = plots.plot_code_sparsity(data.sample.latent, data.sparsity.get("unit_scale"))
    return drawn


def write(data: ReportData, output_dir: str) -> str:
    """Write report.html, report_data.json and the PNGs into output_dir (any filesystem TensorFlow
    knows, gs:// included); returns the HTML path."""
    import tensorflow as tf

    tf.io.gfile.makedirs(output_dir)
    for name in [HTML_FILE, DATA_FILE, *FIGURES.values()]:  # no stale figure of an earlier rendering
        path = os.path.join(output_dir, name)
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
    drawn = figures(data)
    for key, figure in drawn.items():
        plots.save_figure(figure, os.path.join(output_dir, FIGURES[key]))
    write_text(os.path.join(output_dir, DATA_FILE), json.dumps(data.to_json(), indent=1, default=_plain))
    html = render_html(data, {key: FIGURES[key] if key in drawn else None for key in FIGURES})
    path = os.path.join(output_dir, HTML_FILE)
    write_text(path, html)  # tf.io.gfile writes text as UTF-8
    return path


def _plain(value):
    """JSON for numpy scalars and tuples in the data."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def gate_sentence(gate: dict[str, float | None]) -> str:
    """The gate's rule in words, with the run's numbers where the Evaluator recorded them."""

    def amount(key: str) -> str:
        return f" ({gate[key]:g} dB)" if gate.get(key) is not None else ""

    text = (
        "A trained model is blessed, and then pushed to serving, when its mean PSNR on the eval images "
        f"reaches the gate's threshold{amount('psnr_threshold')} and, when a model is already live, does not "
        f"fall more than the allowed tolerance{amount('change_tolerance')} below it."
    )
    if gate.get("class_psnr_floor") is not None:
        text += f" Every class must also reach {gate['class_psnr_floor']:g} dB."
    sparse = [
        f"{label} {gate[key]:g}"
        for key, label in (
            ("max_active_units", "at most"),
            ("min_hoyer", "a Hoyer sparsity of at least"),
        )
        if gate.get(key) is not None
    ]
    if sparse:
        text += f" Its code must be sparse per image: {' active units, and '.join(sparse)} on average."
    if gate.get("max_zeroing_cost") is not None:
        text += (
            f" Decoding only the active units may cost at most {gate['max_zeroing_cost']:g} dB of PSNR (the active "
            "units must carry the image)."
        )
    if gate.get("sparsity_tolerance") is not None:
        text += (
            f" The mean latent activation on the eval images must lie within "
            f"±{gate['sparsity_tolerance']:.0%} of sparsity_target."
        )
    if gate.get("min_gain_over_linear") is not None:
        text += (
            f" It must beat PCA with as many components as its active units (the linear code of the same size) "
            f"by at least {gate['min_gain_over_linear']:g} dB."
        )
    if gate.get("min_gain_over_full_linear") is not None:
        text += f" It must beat PCA of its full code size by at least {gate['min_gain_over_full_linear']:g} dB."
    return text


TEMPLATE_FILE = "report.html.j2"  # the page, a Jinja2 template


def render_html(data: ReportData, images: dict[str, str | None]) -> str:
    """The page: verdict first, then evaluation, reconstructions, training, sparsity, data, lineage.

    images: each FIGURES key -> its file name, None where the figure was not drawn.
    """
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", package_path="."),  # report.html.j2 beside this module
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE_FILE).render(
        d=data,
        s=data.summary,
        images=images,
        gate_text=gate_sentence(data.gate),
        unit_mean=float(np.mean(data.sparsity["unit_means"])) if data.sparsity else None,
        sample_psnr=float(np.mean(data.sample.psnr)) if data.sample is not None else None,
    )
