"""Draw the report's figures and write a self-contained HTML page (plain HTML and CSS, PNGs beside it)."""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import numpy as np

from pipeline.report.content import ReportData
from sparse_ae import plots

HTML_FILE = "report.html"
DATA_FILE = "report_data.json"
FIGURES = {"class_psnr": "class_psnr.png", "reconstructions": "reconstructions.png",
           "training": "training_curves.png", "sparsity": "unit_activation.png"}


def figures(data: ReportData) -> Dict[str, object]:
    """The report's matplotlib Figures, keyed as FIGURES, drawn only from `data` (absent ones left out)."""
    drawn = {}
    names = [row["name"] for row in data.class_psnr]
    if data.class_psnr:
        drawn["class_psnr"] = plots.plot_class_psnr(
            names, [row["psnr"] for row in data.class_psnr], threshold=data.gate.get("psnr_threshold"),
            baseline=[row["baseline"] for row in data.class_psnr], class_floor=data.gate.get("class_psnr_floor"),
            overall=data.summary.psnr, linear=data.summary.linear_baseline_psnr)
    if data.reconstructions and data.sample is not None:
        sample, evaluated = data.sample, data.summary.class_psnr

        def title(row) -> str:
            mean = f" (eval mean {evaluated[row['label']]:.1f} dB)" if row["label"] in evaluated else ""
            return f"{row['label']} {row['name']}{mean}"

        drawn["reconstructions"] = plots.plot_class_reconstructions([
            (title(row), sample.images[row["indices"]], sample.reconstructions[row["indices"]],
             [f"{value:.1f} dB" for value in row["psnr"]]) for row in data.reconstructions])
    if data.training and data.training.get("history"):
        drawn["training"] = plots.plot_training_curves(data.training["history"], data.training.get("sparsity_target"))
    if data.sparsity and data.sparsity.get("sparsity_target") is not None:
        drawn["sparsity"] = plots.plot_unit_activation(data.sparsity["unit_means"], data.sparsity["sparsity_target"])
    return drawn


def sparsity_counts(unit_means: List[float], target: float) -> Dict[str, int]:
    """How many units sit near sparsity_target (within a factor of 2), above, below, or are unused (mean < 1e-3)."""
    means = np.asarray(unit_means)
    return {"near": int(np.sum((means >= target / 2) & (means <= target * 2))),
            "above": int(np.sum(means > target * 2)), "below": int(np.sum((means < target / 2) & (means >= 1e-3))),
            "unused": int(np.sum(means < 1e-3))}


def write(data: ReportData, output_dir: str) -> str:
    """Write report.html, report_data.json and the PNGs into output_dir; returns the HTML path."""
    os.makedirs(output_dir, exist_ok=True)
    for name in [HTML_FILE, DATA_FILE, *FIGURES.values()]:  # no stale figure of an earlier rendering
        path = os.path.join(output_dir, name)
        if os.path.exists(path):
            os.remove(path)
    drawn = figures(data)
    for key, figure in drawn.items():
        plots.save_figure(figure, os.path.join(output_dir, FIGURES[key]))
    with open(os.path.join(output_dir, DATA_FILE), "w") as handle:
        json.dump(data.to_json(), handle, indent=1, default=_plain)
    html = render_html(data, {key: FIGURES[key] if key in drawn else None for key in FIGURES})
    path = os.path.join(output_dir, HTML_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(html)
    return path


def _plain(value):
    """JSON for numpy scalars and tuples in the data."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def gate_sentence(gate: Dict[str, Optional[float]]) -> str:
    """The gate's rule in words, with the run's numbers where the Evaluator recorded them."""
    def amount(key: str) -> str:
        return f" ({gate[key]:g} dB)" if gate.get(key) is not None else ""

    text = ("A trained model is blessed, and then pushed to serving, when its mean PSNR on the eval images "
            f"reaches the gate's threshold{amount('psnr_threshold')} and, when a model is already live, does not "
            f"fall more than the allowed tolerance{amount('change_tolerance')} below it.")
    if gate.get("class_psnr_floor") is not None:
        text += f" Every class must also reach {gate['class_psnr_floor']:g} dB."
    if gate.get("sparsity_tolerance") is not None:
        text += (f" Its code must be sparse as configured: the mean latent activation on the eval images within "
                 f"±{gate['sparsity_tolerance']:.0%} of sparsity_target.")
    if gate.get("min_gain_over_linear") is not None:
        text += (f" It must beat PCA of the same code size (the linear baseline) by at least "
                 f"{gate['min_gain_over_linear']:g} dB.")
    return text


def render_html(data: ReportData, images: Dict[str, Optional[str]]) -> str:
    """The page: verdict first, then evaluation, reconstructions, training, sparsity, data, lineage.

    images: each FIGURES key -> its file name, None where the figure was not drawn.
    """
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
    sparsity: Optional[Dict[str, int]] = None
    if data.sparsity and data.sparsity.get("sparsity_target") is not None:
        sparsity = sparsity_counts(data.sparsity["unit_means"], data.sparsity["sparsity_target"])
    return environment.from_string(TEMPLATE).render(
        d=data, s=data.summary, images=images, counts=sparsity, gate_text=gate_sentence(data.gate),
        unit_mean=float(np.mean(data.sparsity["unit_means"])) if data.sparsity else None,
        sample_psnr=float(np.mean(data.sample.psnr)) if data.sample is not None else None)


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Run report: {{ d.pipeline_name }} {{ d.run_id }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1150px; margin: 1.5em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.meta { color: #555; font-size: 0.92em; }
.verdict { padding: 0.8em 1.1em; border-radius: 6px; margin: 1em 0; border-left: 8px solid; }
.verdict .headline { font-size: 1.3em; font-weight: 700; }
.verdict ul { margin: 0.4em 0 0 0; }
.blessed { background: #e7f6e9; border-color: #2e8b3a; } .not-blessed { background: #fdecea; border-color: #c62828; }
.failed { background: #fdecea; border-color: #7f1010; } .none { background: #f1f1f1; border-color: #777; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.path { font-family: ui-monospace, monospace; font-size: 0.85em; word-break: break-all; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.explain { background: #f7f9fc; border: 1px solid #e1e7f0; padding: 0.6em 0.9em; border-radius: 4px; }
.missing { background: #fff8e1; border: 1px solid #f0d890; padding: 0.6em 0.9em; border-radius: 4px; }
.state-failed { color: #c62828; font-weight: 700; }
</style>
</head>
<body>
<h1>Run report: pipeline <code>{{ d.pipeline_name }}</code></h1>
<div class="meta">Run <code>{{ d.run_id }}</code>{% if s.dataset %} on <code>{{ s.dataset }}</code>{% endif %}
 · generated {{ d.generated }} from ML Metadata (<code>{{ d.metadata_path }}</code>)</div>

<div id="verdict" class="verdict {{ d.verdict.status }}">
<div class="headline">{{ d.verdict.headline }}</div>
{% if d.verdict.details %}<ul>{% for line in d.verdict.details %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
</div>
<p class="explain">{{ gate_text }} PSNR (peak signal-to-noise ratio, in dB) says how close a reconstruction is
to its original: higher is better, and +3 dB means half the squared error.</p>

{% if d.missing %}
<h2>Not shown</h2>
<div class="missing" id="missing"><p>Parts of this report are missing because the run did not produce them:</p>
<ul>{% for line in d.missing %}<li>{{ line }}</li>{% endfor %}</ul></div>
{% endif %}

{% if images.class_psnr %}
<h2>Reconstruction quality per class</h2>
<figure><img src="{{ images.class_psnr }}" alt="Bar chart of eval PSNR per class with the gate threshold line"></figure>
<p class="explain">Each blue bar is this model's mean PSNR over the eval images of one class, as the Evaluator
(TFMA) computed it over the whole eval split ({{ s.example_count }} images).
{% if s.baseline_class_psnr %}Grey bars: the baseline model, the one the gate compared against. {% endif %}
The red dashed line is the gate's threshold; it applies to the overall mean (dotted line), not to each class{% if d.gate.class_psnr_floor is not none %};
the orange line is the floor every class must reach{% endif %}. Low bars show the classes the model reconstructs worst.</p>
<table><tr><th>Class</th><th>Name</th><th>PSNR (dB)</th>{% if s.baseline_class_psnr %}<th>Baseline (dB)</th><th>Change</th>{% endif %}</tr>
{% for row in d.class_psnr %}<tr><td class="num">{{ row.label }}</td><td>{{ row.name }}</td><td class="num">{{ "%.2f"|format(row.psnr) }}</td>
{% if s.baseline_class_psnr %}<td class="num">{{ "%.2f"|format(row.baseline) if row.baseline is not none else "-" }}</td>
<td class="num">{{ "%+.2f"|format(row.psnr - row.baseline) if row.baseline is not none else "-" }}</td>{% endif %}</tr>
{% endfor %}<tr><th></th><th>overall</th><th class="num">{{ "%.2f"|format(s.psnr) }}</th>
{% if s.baseline_class_psnr %}<th class="num">{{ "%.2f"|format(s.baseline_psnr) }}</th><th class="num">{{ "%+.2f"|format(s.psnr - s.baseline_psnr) }}</th>{% endif %}</tr>
</table>
{% endif %}

{% if images.reconstructions %}
<h2>Originals and reconstructions</h2>
<figure><img src="{{ images.reconstructions }}" alt="Eval images of each class over the model's reconstructions"></figure>
<p class="explain">A few eval images of every class: in each block the originals are on top and what the model made
of them below, with each image's PSNR. Blurred or wrong shapes show what the model has not learned. (The first
{{ d.sparsity.sample_count }} images of the <code>{{ d.sparsity.split }}</code> split were run through the exported
SavedModel; their mean PSNR is {{ "%.2f"|format(sample_psnr) }} dB.)</p>
{% endif %}

{% if images.training %}
<h2>Training</h2>
<figure><img src="{{ images.training }}" alt="Training and validation curves per epoch"></figure>
<p class="explain">How the model learned, epoch by epoch: solid lines on the training images, dashed on the eval
images. The loss is the reconstruction error (mean squared error) plus the sparsity penalty: sparsity_weight × the KL
divergence between sparsity_target (the target activation) and each latent unit's mean activation. Falling losses and a rising PSNR mean the
model still improves; a widening gap between training and validation means overfitting. The last panel compares
the mean latent activation with sparsity_target.
{% if d.training.best_epoch %}The exported model is the one of epoch {{ d.training.best_epoch }} of {{ d.training.epochs_run }}
(lowest validation loss{% if d.training.best_val_psnr is not none %}, validation PSNR {{ "%.2f"|format(d.training.best_val_psnr) }} dB{% endif %}).{% endif %}</p>
{% endif %}

{% if images.sparsity %}
<h2>Sparsity of the latent code</h2>
<figure><img src="{{ images.sparsity }}" alt="Mean activation of each latent unit against sparsity_target"></figure>
<p class="explain">The model compresses each image into {{ d.sparsity.unit_means|length }} numbers (latent units).
A sparse code uses each unit only rarely: on average at sparsity_target = {{ "%g"|format(d.sparsity.sparsity_target) }}
(red line). Each bar is one unit's mean activation over {{ d.sparsity.sample_count }} eval images; their mean is
{{ "%.4f"|format(unit_mean) }}. {{ counts.near }} units are within a factor of 2 of sparsity_target, {{ counts.above }} above,
{{ counts.below }} below, and {{ counts.unused }} are practically unused (mean below 0.001).
{% if d.sparsity.latent_activation == "relu" %}The latent activation is relu: the penalty compares tanh of each unit's
mean with sparsity_target, so means are not bounded by 1.{% endif %}</p>
{% endif %}

<h2>Components</h2>
<table><tr><th>Component</th><th>Outcome</th><th>Execution (ML Metadata)</th></tr>
{% for c in d.components %}<tr><td>{{ c.node }}</td><td class="state-{{ c.state }}">{{ c.state }}</td><td class="num">{{ c.execution }}</td></tr>
{% endfor %}</table>
{% if "cached" in d.components|map(attribute="state") %}<p class="meta">cached: reused from an earlier run with the same inputs and settings.</p>{% endif %}

<h2>Data</h2>
{% if d.statistics %}
<table><tr><th>Split</th><th>Examples</th><th>Feature</th><th>Values per example</th><th>Min</th><th>Mean</th><th>Max</th><th>Missing</th></tr>
{% for split, st in d.statistics|dictsort %}{% for name, f in st.features|dictsort %}<tr>
{% if loop.first %}<td rowspan="{{ st.features|length }}">{{ split }}</td><td class="num" rowspan="{{ st.features|length }}">{{ st.examples }}</td>{% endif %}
<td>{{ name }}</td><td class="num">{{ "%g"|format(f.values_per_example) }}</td><td class="num">{{ "%g"|format(f.min) }}</td>
<td class="num">{{ "%.3f"|format(f.mean) }}</td><td class="num">{{ "%g"|format(f.max) }}</td><td class="num">{{ f.missing }}</td></tr>
{% endfor %}{% endfor %}</table>
<p class="explain">From StatisticsGen: how many examples each split holds and the range of each feature
(<code>image</code>: the pixel values 0–255 of all images; <code>label</code>: the class number).</p>
{% endif %}
<div id="anomalies">{% if s.anomalies %}<p><b>Anomalies found by ExampleValidator</b> (data that do not match the schema):</p>
<ul>{% for a in s.anomalies %}<li>{{ a }}</li>{% endfor %}</ul>
{% elif "ExampleValidator" in s.components|map("first") %}<p>Anomalies: none. ExampleValidator found the data consistent with the schema.</p>{% endif %}</div>

<h2>Lineage</h2>
<table><tr><th>What</th><th>Which</th><th>Where</th></tr>
{% for row in d.lineage %}<tr><td>{{ row.what }}</td><td>{{ row.value }}</td><td class="path">{{ row.where }}</td></tr>
{% endfor %}</table>
<p class="meta">Rebuild this report: <code>sparse-ae report --pipeline-root {{ d.pipeline_root }} --run {{ d.run_id }}</code>.
The numbers behind every figure are in <a href="report_data.json">report_data.json</a>.</p>
</body>
</html>
"""
