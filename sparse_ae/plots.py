"""Pictures of reconstructions: originals over reconstructions, as a PNG."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def save_reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray, path: str,
                             titles: Optional[Sequence[str]] = None, scale: float = 1.2) -> str:
    """Write a two-row grid (originals on top, reconstructions below) of uint8 images to path."""
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
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
