"""How sparse a latent code is, per image: active units, Hoyer sparsity, dead units, and the PSNR
left when only the active units are decoded.

One definition everywhere (fit logs, metrics.json, the exported signatures, the gate, the report):

- a unit is **active** on an image when its value exceeds ACTIVE_SHARE (10 %) of that unit's own
  largest value over the images measured (its *scale*). Scale-free, so sigmoid, ReLU and TopK
  codes compare; the exported model carries the scales measured on the eval split, and the fit
  logs use each batch's own;
- **Hoyer sparsity** of an image's code x of n units: (sqrt(n) - |x|_1 / |x|_2) / (sqrt(n) - 1),
  0 when every unit is equal, 1 when one unit carries the code (an all-zero code counts as 1);
- a unit is **dead** when it stays at or below DEAD_FLOOR on every image measured;
- **zeroing cost**: PSNR of the full code minus PSNR after setting every inactive unit to 0. It
  tests whether the active units really carry the image (a dense code of weak activations loses
  most of its PSNR).

The mean activation (what the KL penalty steers) stays reported beside these figures: a code can
meet it with every unit weakly on, which is not sparse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import tensorflow as tf

from sparse_ae.metrics import mse_per_image, psnr_from_mse

ACTIVE_SHARE = 0.1  # a unit is active above this share of its own largest value
DEAD_FLOOR = 1e-6  # a unit never above this on any image measured is dead


def unit_scale(codes: tf.Tensor) -> tf.Tensor:
    """Each unit's largest value over the images, shape (units,)."""
    return tf.reduce_max(codes, axis=0)


def active_mask(codes: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """True where a unit is active on an image: above ACTIVE_SHARE of its scale (a dead unit never is)."""
    scale = tf.cast(scale, codes.dtype)
    return tf.logical_and(codes > ACTIVE_SHARE * scale, scale > DEAD_FLOOR)


def active_units(codes: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """Active units of each image, shape (batch,), float32."""
    return tf.reduce_sum(tf.cast(active_mask(codes, scale), tf.float32), axis=1)


def hoyer(codes: tf.Tensor) -> tf.Tensor:
    """Hoyer sparsity of each image's code, shape (batch,): 0 all units equal, 1 a single unit."""
    codes = tf.cast(codes, tf.float32)
    root_n = tf.sqrt(tf.cast(tf.shape(codes)[1], tf.float32))
    l1 = tf.reduce_sum(tf.abs(codes), axis=1)
    l2 = tf.sqrt(tf.reduce_sum(tf.square(codes), axis=1))
    ratio = tf.math.divide_no_nan(l1, l2)
    return tf.where(l2 > 0, (root_n - ratio) / (root_n - 1.0), tf.ones_like(l2))


def dead_fraction(scale: tf.Tensor) -> tf.Tensor:
    """Share of the units that are dead (never above DEAD_FLOOR), a scalar."""
    return tf.reduce_mean(tf.cast(scale <= DEAD_FLOOR, tf.float32))


def active_only(codes: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """The codes with every inactive unit set to 0."""
    return tf.where(active_mask(codes, scale), codes, tf.zeros_like(codes))


def active_code_size(code_sparsity: dict, largest: int) -> int:
    """The PCA size that matches a code: its mean active units per image (measure's), rounded, in 1..largest."""
    return max(1, min(largest, round(code_sparsity["active_units"])))


def measure(
    encode: Callable[[tf.Tensor], tf.Tensor],
    decode: Callable[[tf.Tensor], tf.Tensor],
    batches: Callable[[], Iterable[tuple[tf.Tensor, tf.Tensor]]],
) -> dict[str, Any]:
    """The code's sparsity figures on a split: two passes over (input, target) batches.

    The first pass finds each unit's scale (its largest value over the split), the second counts
    active units, Hoyer sparsity and the PSNR with only the active units decoded. batches is
    called once per pass. Returns plain floats (metrics.json) and the scales (the export).
    """
    scale = None
    for inputs, _ in batches():
        batch_scale = unit_scale(encode(inputs))
        scale = batch_scale if scale is None else tf.maximum(scale, batch_scale)
    if scale is None:
        raise ValueError("sparsity.measure: the split has no images")
    names = ("active_units", "nonzero_units", "hoyer", "mean_activation", "psnr", "psnr_active_only")
    sums = dict.fromkeys(names, 0.0)
    images = 0
    active_histogram = np.zeros(int(scale.shape[0]) + 1, dtype=np.int64)
    for inputs, targets in batches():
        codes = encode(inputs)
        counts = active_units(codes, scale)
        figures = {
            "active_units": counts,
            "nonzero_units": tf.reduce_sum(tf.cast(codes > DEAD_FLOOR, tf.float32), axis=1),
            "hoyer": hoyer(codes),
            "mean_activation": tf.reduce_mean(codes, axis=1),
            "psnr": psnr_from_mse(mse_per_image(targets, decode(codes))),
            "psnr_active_only": psnr_from_mse(mse_per_image(targets, decode(active_only(codes, scale)))),
        }
        for name, values in figures.items():
            sums[name] += float(tf.reduce_sum(values))
        active_histogram += np.bincount(counts.numpy().astype(np.int64), minlength=len(active_histogram))
        images += int(tf.shape(codes)[0])
    means = {name: total / images for name, total in sums.items()}
    return {
        **means,
        "zeroing_cost": means["psnr"] - means["psnr_active_only"],
        "dead_fraction": float(dead_fraction(scale)),
        "units": int(scale.shape[0]),
        "images": images,
        # images with 0, 1, 2, ... active units: the distribution the report draws
        "active_units_histogram": active_histogram.tolist(),
        "unit_scale": [float(value) for value in scale.numpy()],
    }
