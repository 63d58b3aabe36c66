"""Pictures: originals over reconstructions, and the run report's figures (matplotlib, no TFX)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np


def save_reconstruction_grid(
    originals: np.ndarray,
    reconstructions: np.ndarray,
    path: str | BinaryIO,
    titles: Sequence[str] | None = None,
    scale: float = 1.2,
) -> str | BinaryIO:
    """Write a two-row grid (originals on top, reconstructions below) of uint8 images to path (any
    filesystem TensorFlow knows, gs:// included) or a binary file object."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(originals)
    figure, axes = plt.subplots(2, count, figsize=(scale * count, scale * 2.3), squeeze=False)
    for column in range(count):
        for row, images in enumerate((originals, reconstructions)):
            axis = axes[row][column]
            axis.imshow(np.squeeze(images[column]), cmap="gray", vmin=0, vmax=255)
            axis.set_xticks([])
            axis.set_yticks([])
        if titles is not None:
            axes[0][column].set_title(str(titles[column]), fontsize=8)
    axes[0][0].set_ylabel("original", fontsize=8)
    axes[1][0].set_ylabel("reconstruction", fontsize=8)
    figure.tight_layout()
    if isinstance(path, str):
        save_figure(figure, path)
    else:
        figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
    return path


# Figures of the run report (pipeline/report): each returns a matplotlib Figure built from plain
# numbers, so a test can read back exactly what is drawn; `save_figure` writes it. Object-oriented
# matplotlib (no pyplot): no global state, no display backend needed.
_TRAINING_PANELS = (
    ("loss", "loss (reconstruction + KL)"),
    ("recon_loss", "reconstruction loss (MSE)"),
    ("kl_penalty", "KL sparsity penalty"),
    ("psnr", "PSNR (dB)"),
    ("mean_activation", "mean latent activation"),
    ("active_units", "active latent units per image"),
    ("hoyer", "Hoyer sparsity per image"),
)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure, path: str, dpi: int = 100) -> str:
    """Write a Figure as PNG to path, on any filesystem TensorFlow knows (gs:// included); returns path."""
    import io

    import tensorflow as tf

    png = io.BytesIO()  # matplotlib writes to a file object; tf.io.gfile then writes it anywhere
    figure.savefig(png, format="png", dpi=dpi)
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(png.getvalue())
    return path


def plot_training_curves(history: dict[str, Sequence[float]], sparsity_target: float | None = None):
    """Per-epoch training and validation curves of the model's metrics; the sparsity target ρ as a line
    on the mean-activation panel."""
    figure = _figure(15, 6.4)
    axes = figure.subplots(2, 4).ravel()
    for axis, (name, title) in zip(axes, _TRAINING_PANELS, strict=False):
        for key, label, style in ((name, "training", "o-"), (f"val_{name}", "validation", "s--")):
            values = history.get(key)
            if values:
                axis.plot(range(1, len(values) + 1), values, style, label=label, gid=key)
        if name == "mean_activation" and sparsity_target is not None:
            axis.axhline(
                sparsity_target,
                color="tab:red",
                linestyle=":",
                label=f"sparsity_target = {sparsity_target:g}",
                gid="sparsity_target",
            )
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("epoch", fontsize=8)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
    handles, labels = axes[4].get_legend_handles_labels()  # the mean-activation panel: with sparsity_target
    axes[7].axis("off")
    axes[7].legend(handles, labels, loc="center", fontsize=10, frameon=False)
    return figure


def plot_code_sparsity(latent: np.ndarray, unit_scale: Sequence[float] | None = None, shown: int = 8):
    """How sparse the code is per image (sparse_ae/sparsity.py's definitions), in three panels: the
    distribution of active units per image, every activation's histogram, and a few images' codes.

    unit_scale: each unit's largest value on the eval split (the Trainer's); default: the sample's.
    """
    from sparse_ae.sparsity import ACTIVE_SHARE, DEAD_FLOOR

    latent = np.asarray(latent, dtype=float)
    scale = latent.max(axis=0) if unit_scale is None else np.asarray(unit_scale, dtype=float)
    active = (latent > ACTIVE_SHARE * scale) & (scale > DEAD_FLOOR)
    counts = active.sum(axis=1)
    figure = _figure(13, 3.6)
    per_image, values, codes = figure.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.6]})
    per_image.hist(counts, bins=np.arange(latent.shape[1] + 2) - 0.5, color="tab:blue", gid="active_per_image")
    per_image.axvline(counts.mean(), color="black", linestyle=":", label=f"mean {counts.mean():.1f}")
    per_image.set_xlim(-0.5, max(int(counts.max()), 1) + 1.5)
    per_image.set_xlabel(f"active units per image (of {latent.shape[1]})", fontsize=9)
    per_image.set_ylabel("images", fontsize=9)
    per_image.legend(fontsize=8, frameon=False)
    values.hist(latent.ravel(), bins=60, color="tab:gray", log=True, gid="activations")
    values.set_xlabel("activation (every unit, every image)", fontsize=9)
    values.set_ylabel("count (log)", fontsize=9)
    rows = latent[:shown] / np.where(scale > DEAD_FLOOR, scale, 1.0)
    image = codes.imshow(rows, aspect="auto", cmap="Greys", vmin=0.0, vmax=1.0, interpolation="nearest", gid="codes")
    codes.set_xlabel("latent unit", fontsize=9)
    codes.set_ylabel("image", fontsize=9)
    codes.set_title(f"the first {len(rows)} images' codes (share of each unit's largest value)", fontsize=9)
    figure.colorbar(image, ax=codes, fraction=0.04)
    for axis in (per_image, values, codes):
        axis.tick_params(labelsize=8)
    return figure


def plot_class_psnr(
    class_names: Sequence[str],
    values: Sequence[float],
    threshold: float | None = None,
    baseline: Sequence[float | None] | None = None,
    class_floor: float | None = None,
    overall: float | None = None,
    linear: float | None = None,
):
    """Per-class PSNR bars (the candidate; the baseline beside it when given) with the gate's lines,
    and the linear baseline's (PCA of the same code size) overall mean when given."""
    count = len(values)
    positions = np.arange(count)
    with_baseline = baseline is not None and any(v is not None for v in baseline)
    width = 0.4 if with_baseline else 0.7
    figure = _figure(max(7.0, 0.9 * count + 2), 4.2)
    axis = figure.subplots()
    offset = width / 2 if with_baseline else 0.0
    bars = axis.bar(positions - offset, values, width, color="tab:blue", label="this model", gid="candidate")
    axis.bar_label(bars, fmt="%.1f", fontsize=7)
    if baseline is not None and with_baseline:
        heights = [np.nan if v is None else v for v in baseline]
        axis.bar(positions + offset, heights, width, color="tab:gray", label="baseline model", gid="baseline")
    if threshold is not None:
        axis.axhline(
            threshold,
            color="tab:red",
            linestyle="--",
            gid="threshold",
            label=f"gate threshold {threshold:g} dB (overall mean)",
        )
    if class_floor is not None:
        axis.axhline(
            class_floor,
            color="tab:orange",
            linestyle="-.",
            label=f"class floor {class_floor:g} dB",
            gid="class_floor",
        )
    if overall is not None:
        axis.axhline(overall, color="black", linestyle=":", label=f"overall mean {overall:.2f} dB", gid="overall")
    if linear is not None:
        axis.axhline(
            linear,
            color="tab:purple",
            linestyle="--",
            label=f"PCA, same code size {linear:.2f} dB",
            gid="linear",
        )
    axis.set_xticks(positions, list(class_names), rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("PSNR (dB), higher is better", fontsize=9)
    lows = [v for v in list(values) + [threshold, class_floor, linear] + list(baseline or []) if v is not None]
    axis.set_ylim(max(0.0, min(lows) - 3), max(lows) + 2)
    axis.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False)
    axis.grid(axis="y", alpha=0.3)
    return figure


def plot_class_reconstructions(
    blocks: Sequence[tuple[str, np.ndarray, np.ndarray, Sequence[str]]], columns: int = 3, scale: float = 2.4
):
    """Originals over reconstructions, one block per class: (title, originals, reconstructions, captions)
    of uint8 images, blocks in a grid of `columns`.

    Drawn as one mosaic image in one Axes: a hundred small Axes took seconds to lay out.
    """
    height, width = np.squeeze(blocks[0][1][0]).shape[:2]
    per_block = max(len(block[1]) for block in blocks)
    pad, label_w, title_h, caption_h, gap = 3, 10, 11, 9, 8
    cell_w, cell_h = width + pad, height + pad
    block_w, block_h = label_w + per_block * cell_w + gap, title_h + 2 * cell_h + caption_h + gap
    rows = -(-len(blocks) // columns)
    mosaic = np.full((rows * block_h, columns * block_w), 255, np.uint8)
    texts: list[tuple[float, float, str, dict[str, Any]]] = []  # (x, y, text, keyword arguments), mosaic pixels
    for index, (title, originals, reconstructions, captions) in enumerate(blocks):
        top, left = (index // columns) * block_h, (index % columns) * block_w + label_w
        texts.append((left, top + title_h - 2, title, {"fontsize": 9, "weight": "bold", "va": "bottom"}))
        for row, name in enumerate(("original", "recon.")):
            y = top + title_h + row * cell_h + height / 2
            texts.append((left - 2, y, name, {"fontsize": 6, "rotation": 90, "ha": "right", "va": "center"}))
        for column, (original, reconstruction) in enumerate(zip(originals, reconstructions, strict=False)):
            x, y = left + column * cell_w, top + title_h
            mosaic[y : y + height, x : x + width] = np.squeeze(original)
            mosaic[y + cell_h : y + cell_h + height, x : x + width] = np.squeeze(reconstruction)
            if column < len(captions):
                texts.append(
                    (
                        x + width / 2,
                        y + 2 * cell_h - pad + 1,
                        captions[column],
                        {"fontsize": 7, "ha": "center", "va": "top"},
                    )
                )
    from matplotlib.figure import Figure

    figure = Figure(figsize=(mosaic.shape[1] * scale / 100, mosaic.shape[0] * scale / 100))
    axis = figure.add_axes((0, 0, 1, 1))
    axis.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest", gid="mosaic")
    for x, y, text, options in texts:
        axis.text(x, y, text, **{"ha": "left", **options})
    axis.axis("off")
    return figure
