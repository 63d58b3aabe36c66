"""The anomaly threshold that travels with a model: its per-image MSE distribution on the eval split.

Stored as `assets.extra/calibration.json` inside the SavedModel folder: TensorFlow's documented
place for files that live with a SavedModel without being loaded into its graph (TF Serving reads
its warm-up requests from there). Every copy of the folder (the Pusher's archive, each serving
version, a manual promotion or a rollback) therefore carries its own calibration, and scoring needs
nothing but the serving folder. Paths go through tf.io.gfile, so a remote serving_dir works.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

CALIBRATION_FILE = os.path.join("assets.extra", "calibration.json")
DEFAULT_QUANTILE = 0.99
# The quantiles recorded besides the configured one: enough to pick another threshold later.
REPORTED_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.995, 0.999)


@dataclasses.dataclass
class Calibration:
    """Per-image MSE quantiles of a model on a split, and the anomaly threshold at `quantile`."""

    quantile: float  # the configured quantile (scoring.anomaly_quantile)
    threshold: float  # MSE above this flags an image as anomalous
    quantiles: dict[str, float]  # "0.99" -> MSE at that quantile
    count: int  # images the distribution was measured on
    mean_mse: float
    split: str = "eval"
    dataset: str = ""
    image_shape: list[int] | None = None  # the images the model takes (H, W, C)

    def describe(self) -> str:
        """One line: where the threshold comes from."""
        on = f"{self.dataset} " if self.dataset else ""
        return (
            f"MSE > {self.threshold:.6g}: the {self.quantile:g} quantile of the model's per-image MSE on "
            f"the {on}{self.split} split ({self.count} images)"
        )


def calibrate(
    mse: Iterable[float],
    quantile: float = DEFAULT_QUANTILE,
    split: str = "eval",
    dataset: str = "",
    image_shape: Sequence[int] | None = None,
) -> Calibration:
    """The calibration of per-image MSE values (numpy's default, linear-interpolated quantiles)."""
    values = np.asarray(list(mse) if not isinstance(mse, np.ndarray) else mse, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot calibrate on an empty split")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1); got {quantile}")
    levels = sorted(set(REPORTED_QUANTILES) | {quantile})
    found = np.quantile(values, levels)
    return Calibration(
        quantile=quantile,
        threshold=float(np.quantile(values, quantile)),
        quantiles={f"{q:g}": float(v) for q, v in zip(levels, found, strict=False)},
        count=int(values.size),
        mean_mse=float(values.mean()),
        split=split,
        dataset=dataset,
        image_shape=list(image_shape) if image_shape else None,
    )


def write_calibration(model_dir: str, calibration: Calibration) -> str:
    """Write calibration.json under model_dir/assets.extra/; returns its path."""
    path = os.path.join(model_dir, CALIBRATION_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(dataclasses.asdict(calibration), indent=2))
    return path


def read_calibration(model_dir: str) -> Calibration | None:
    """The calibration stored with a SavedModel; None when it has none (a model exported before)."""
    path = os.path.join(model_dir, CALIBRATION_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return Calibration(**json.loads(handle.read()))


def model_mse(model, pairs: tf.data.Dataset) -> np.ndarray:
    """Per-image MSE of a Keras SparseAutoencoder over (input, target) batches, as serving computes it."""
    from sparse_ae.metrics import mse_per_image

    found = [mse_per_image(target, model(inputs, training=False)).numpy() for inputs, target in pairs]
    return np.concatenate(found) if found else np.zeros([0])
