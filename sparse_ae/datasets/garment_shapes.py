"""`garment_shapes`: a synthetic, procedurally drawn stand-in for Fashion-MNIST.

28x28 grey-scale silhouettes of ten garment-like shape families, drawn with
numpy from a seed. Nothing is downloaded: the same config always yields
byte-identical images and labels. Importing this module registers the builder
with TFDS under the name ``garment_shapes``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds

IMAGE_SIZE = 28
CLASS_NAMES = (
    "t_shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
NUM_CLASSES = len(CLASS_NAMES)

# Images are drawn in chunks: large enough to amortise numpy call overhead,
# small enough to keep the (N, 28, 28) float work arrays in cache-friendly sizes.
_CHUNK = 1000
# Pixels per canonical unit at scale 1; canonical coordinates span about [-1, 1],
# so an unscaled garment fills ~25 of the 28 pixels, like Fashion-MNIST items.
_PX_PER_UNIT = 12.5

# A shape function maps canonical coordinates (u right, v down; each (n, 28, 28))
# to (signed distance to the outline, distance to inner seam lines or None).
# Distances are in canonical units; negative means inside the garment.
ShapeFn = Callable[
    [np.ndarray, np.ndarray, np.random.Generator],
    tuple[np.ndarray, np.ndarray | None],
]


# --------------------------------------------------------------------------
# Signed-distance primitives. All parameters broadcast against (n, 28, 28), so
# every image in a chunk gets its own proportions without a Python loop.
# --------------------------------------------------------------------------
def _unif(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """Per-image uniform parameter, shaped (n, 1, 1) to broadcast over pixels."""
    return rng.uniform(lo, hi, size=(n, 1, 1)).astype(np.float32)


def _box(u, v, cx, cy, hw, hh, r=0.0):
    """Rounded box centred at (cx, cy) with half-sizes (hw, hh), corner radius r."""
    qx = np.abs(u - cx) - hw + r
    qy = np.abs(v - cy) - hh + r
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    return outside + inside - r


def _bar(u, v, ax, ay, bx, by, hw):
    """Square-ended bar from A to B with half-thickness hw (sleeves, legs)."""
    dx, dy = bx - ax, by - ay
    length = np.hypot(dx, dy)
    tx, ty = dx / length, dy / length
    px, py = u - ax, v - ay
    along = px * tx + py * ty
    across = py * tx - px * ty
    return _box(along, across, length / 2, 0.0, length / 2, hw)


def _segment(u, v, ax, ay, bx, by):
    """Unsigned distance to the segment A-B (seams; straps once a radius is subtracted)."""
    dx, dy = bx - ax, by - ay
    px, py = u - ax, v - ay
    h = np.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(px - dx * h, py - dy * h)


def _ellipse(u, v, cx, cy, a, b):
    """Approximate signed distance of an axis-aligned ellipse (exact for circles)."""
    return (np.hypot((u - cx) / a, (v - cy) / b) - 1.0) * np.minimum(a, b)


def _trapezoid(u, v, y0, y1, w0, w1):
    """Trapezoid symmetric about u=0: half-width w0 at v=y0, w1 at v=y1."""
    k = (w1 - w0) / (y1 - y0)
    side = (np.abs(u) - (w0 + k * (v - y0))) / np.sqrt(1.0 + k * k)
    return np.maximum(side, np.maximum(y0 - v, v - y1))


def _below(u, v, x0, y0, x1, y1):
    """Half-plane below (larger v than) the line through (x0, y0) and (x1, y1)."""
    k = (y1 - y0) / (x1 - x0)
    return (y0 + k * (u - x0) - v) / np.sqrt(1.0 + k * k)


def _cut(a, b):
    """Shape a with shape b removed."""
    return np.maximum(a, -b)


# --------------------------------------------------------------------------
# One shape family per class. Tops and dresses use |u| so both sleeves come from
# one bar; footwear points its toe to the left.
# --------------------------------------------------------------------------
def _t_shirt(u, v, rng):
    n = u.shape[0]
    top, bot = _unif(rng, n, -0.82, -0.68), _unif(rng, n, 0.78, 0.97)
    wb = _unif(rng, n, 0.40, 0.55)
    body = _trapezoid(u, v, top, bot, wb, wb + _unif(rng, n, -0.04, 0.08))
    # Short sleeves stick out sideways and slightly down: the T silhouette.
    ang, length = _unif(rng, n, 0.25, 0.7), _unif(rng, n, 0.32, 0.5)
    sx, sy = wb - 0.12, top + _unif(rng, n, 0.13, 0.2)
    sleeves = _bar(np.abs(u), v, sx, sy, sx + length * np.cos(ang), sy + length * np.sin(ang), _unif(rng, n, 0.14, 0.2))
    neck = _ellipse(u, v, 0.0, top, _unif(rng, n, 0.15, 0.24), _unif(rng, n, 0.07, 0.14))
    return _cut(np.minimum(body, sleeves), neck), None


def _trouser(u, v, rng):
    n = u.shape[0]
    top, bot = _unif(rng, n, -0.98, -0.88), _unif(rng, n, 0.86, 0.99)
    w = _unif(rng, n, 0.30, 0.42)
    crotch = _unif(rng, n, -0.45, -0.2)
    gap = _unif(rng, n, 0.02, 0.05)
    waist = _box(u, v, 0.0, (top + crotch) / 2, w, (crotch - top) / 2)
    # Each leg is a bar from the waist to the hem, flaring out a little.
    leg_hw = (w - gap) / 2
    xc = gap + leg_hw
    legs = _bar(np.abs(u), v, xc, top + 0.05, xc + _unif(rng, n, -0.02, 0.12), bot, leg_hw)
    band_y = top + _unif(rng, n, 0.08, 0.14)
    seam = _segment(u, v, -w, band_y, w, band_y)
    return np.minimum(waist, legs), seam


def _pullover(u, v, rng):
    n = u.shape[0]
    top, bot = _unif(rng, n, -0.9, -0.78), _unif(rng, n, 0.78, 0.95)
    wb = _unif(rng, n, 0.36, 0.48)
    body = _trapezoid(u, v, top, bot, wb, wb + _unif(rng, n, -0.04, 0.04))
    # Long sleeves hang down, splayed away from the body (arms at ~30-45 deg).
    sx, sy = wb - 0.1, top + 0.12
    sleeves = _bar(
        np.abs(u),
        v,
        sx,
        sy,
        wb + _unif(rng, n, 0.35, 0.5),
        bot - _unif(rng, n, 0.0, 0.15),
        _unif(rng, n, 0.12, 0.16),
    )
    neck = _ellipse(u, v, 0.0, top, _unif(rng, n, 0.15, 0.22), _unif(rng, n, 0.08, 0.13))
    # Ribbed waistband and cuffs are knit seams across the hem.
    band_y = bot - _unif(rng, n, 0.1, 0.16)
    seam = _segment(u, v, -wb, band_y, wb, band_y)
    return _cut(np.minimum(body, sleeves), neck), seam


def _dress(u, v, rng):
    n = u.shape[0]
    top, bot = _unif(rng, n, -0.95, -0.84), _unif(rng, n, 0.85, 0.99)
    wt = _unif(rng, n, 0.2, 0.3)
    waist_y = _unif(rng, n, -0.35, -0.12)
    ww = wt * _unif(rng, n, 0.75, 1.0)
    bodice = _trapezoid(u, v, top, waist_y, wt, ww)
    skirt = _trapezoid(u, v, waist_y, bot, ww, _unif(rng, n, 0.5, 0.8))
    # Cap sleeves on about half the dresses; a zero-length-ish bar hides inside.
    cap = np.where(rng.random((n, 1, 1)) < 0.5, 0.03, _unif(rng, n, 0.12, 0.24))
    sx, sy = wt - 0.08, top + 0.07
    sleeves = _bar(np.abs(u), v, sx, sy, sx + cap, sy + 0.6 * cap, 0.07)
    neck = _ellipse(u, v, 0.0, top, _unif(rng, n, 0.08, 0.16), _unif(rng, n, 0.08, 0.22))
    seam = _segment(u, v, -ww, waist_y, ww, waist_y)
    return _cut(np.minimum(np.minimum(bodice, skirt), sleeves), neck), seam


def _coat(u, v, rng):
    n = u.shape[0]
    top, bot = _unif(rng, n, -0.99, -0.9), _unif(rng, n, 0.9, 0.99)
    wb = _unif(rng, n, 0.42, 0.54)
    body = _trapezoid(u, v, top, bot, wb, wb + _unif(rng, n, 0.0, 0.1))
    # Sleeves hang almost straight beside the body, ending at the pockets.
    sx, sy = wb - 0.08, top + 0.1
    sleeves = _bar(
        np.abs(u),
        v,
        sx,
        sy,
        wb + _unif(rng, n, 0.1, 0.2),
        _unif(rng, n, 0.5, 0.75),
        _unif(rng, n, 0.12, 0.16),
    )
    # Open V collar between the lapels.
    v_tip = top + _unif(rng, n, 0.3, 0.5)
    collar = _trapezoid(u, v, top - 0.1, v_tip, _unif(rng, n, 0.18, 0.26), 0.0)
    # Front opening from the collar to the hem, plus two pocket seams.
    pocket_y, px = _unif(rng, n, 0.3, 0.5), _unif(rng, n, 0.12, 0.2)
    seam = np.minimum(
        _segment(u, v, 0.0, v_tip, 0.0, bot),
        _segment(np.abs(u), v, px, pocket_y, px + 0.2, pocket_y),
    )
    return _cut(np.minimum(body, sleeves), collar), seam


def _sandal(u, v, rng):
    n = u.shape[0]
    sole_y, sole_h = _unif(rng, n, 0.25, 0.45), _unif(rng, n, 0.08, 0.13)
    d = _box(u, v, 0.0, sole_y, 0.94, sole_h, r=0.06)
    # Three straps from the sole to an arch, tied together across the top:
    # a sparse lattice, unlike the closed shoes.
    arch = sole_y - _unif(rng, n, 0.5, 0.75)
    r = _unif(rng, n, 0.07, 0.11)
    tops = []
    for x in (-0.6, -0.15, 0.3):
        x0 = x + _unif(rng, n, -0.08, 0.08)
        x1 = x0 + _unif(rng, n, -0.15, 0.3)
        y1 = arch + _unif(rng, n, -0.05, 0.1) + 0.15 * np.abs(x)
        tops.append((x1, y1))
        d = np.minimum(d, _segment(u, v, x0, sole_y, x1, y1) - r)
    for (ax, ay), (bx, by) in zip(tops[:-1], tops[1:], strict=False):
        d = np.minimum(d, _segment(u, v, ax, ay, bx, by) - r)
    # Ankle loop above the heel.
    cy, rad = sole_y - _unif(rng, n, 0.35, 0.5), _unif(rng, n, 0.15, 0.22)
    loop = np.abs(_ellipse(u, v, 0.72, cy, rad, rad)) - r
    return np.minimum(d, loop), None


def _sneaker(u, v, rng):
    n = u.shape[0]
    sole_bot, sole_h = _unif(rng, n, 0.35, 0.5), _unif(rng, n, 0.1, 0.16)
    toe_y, heel_y = _unif(rng, n, -0.15, 0.05), _unif(rng, n, -0.6, -0.38)
    frame = _box(u, v, -0.01, (heel_y + sole_bot) / 2, 0.94, (sole_bot - heel_y) / 2, r=0.12)
    # Upper slopes up from the toe box to the ankle collar; rounded toe cap
    # (the ellipse only trims the front, the heel stays square).
    upper = np.minimum(_below(u, v, -0.35, toe_y, 0.6, heel_y), toe_y - v)
    toe = np.minimum(_ellipse(u, v, -0.3, sole_bot, 0.66, sole_bot - toe_y + 0.12), -0.3 - u)
    d = np.maximum(np.maximum(frame, upper), toe)
    d = _cut(d, _ellipse(u, v, 0.55, heel_y - 0.02, _unif(rng, n, 0.12, 0.22), 0.1))
    lace_x = _unif(rng, n, -0.35, -0.2)
    seam = np.minimum(
        _segment(u, v, -0.95, sole_bot - sole_h, 0.95, sole_bot - sole_h),
        _segment(u, v, lace_x, toe_y + 0.05, 0.3, heel_y + 0.15),
    )
    return d, seam


def _bag(u, v, rng):
    n = u.shape[0]
    body_top, body_bot = _unif(rng, n, -0.35, -0.05), _unif(rng, n, 0.7, 0.95)
    w_top = _unif(rng, n, 0.6, 0.88)
    body = _trapezoid(u, v, body_top, body_bot, w_top, w_top + _unif(rng, n, -0.05, 0.12))
    # Handle: an elliptical ring above the body, clipped at the body's top edge.
    rx, ry = _unif(rng, n, 0.25, 0.5), _unif(rng, n, 0.3, 0.6)
    ring = np.abs(_ellipse(u, v, 0.0, body_top, rx, ry)) - _unif(rng, n, 0.05, 0.09)
    handle = np.maximum(ring, v - body_top)
    flap_y = body_top + _unif(rng, n, 0.15, 0.4)
    seam = _segment(u, v, -w_top, flap_y, w_top, flap_y)
    return np.minimum(body, handle), seam


def _shirt(u, v, rng):
    n = u.shape[0]
    top, bot = _unif(rng, n, -0.86, -0.74), _unif(rng, n, 0.72, 0.92)
    wb = _unif(rng, n, 0.36, 0.48)
    body = _trapezoid(u, v, top, bot, wb, wb + _unif(rng, n, -0.02, 0.06))
    # Long sleeves spread wide (a Y silhouette), unlike the pullover's hanging arms.
    ang, length = _unif(rng, n, 0.75, 1.05), _unif(rng, n, 0.75, 0.95)
    sx, sy = wb - 0.1, top + 0.14
    sleeves = _bar(np.abs(u), v, sx, sy, sx + length * np.cos(ang), sy + length * np.sin(ang), _unif(rng, n, 0.1, 0.13))
    # Small V notch under a pointed collar, then a button placket to the hem.
    v_tip = top + _unif(rng, n, 0.15, 0.25)
    notch = _trapezoid(u, v, top - 0.1, v_tip, _unif(rng, n, 0.1, 0.15), 0.0)
    seam = np.minimum(
        _segment(u, v, 0.0, v_tip, 0.0, bot),
        _segment(np.abs(u), v, 0.2, top, 0.03, v_tip + 0.08),
    )
    return _cut(np.minimum(body, sleeves), notch), seam


def _ankle_boot(u, v, rng):
    n = u.shape[0]
    sole_bot, sole_h = _unif(rng, n, 0.55, 0.72), _unif(rng, n, 0.1, 0.15)
    x0, x1 = _unif(rng, n, 0.0, 0.25), _unif(rng, n, 0.8, 0.95)
    shaft_top, foot_top = _unif(rng, n, -0.98, -0.72), _unif(rng, n, -0.1, 0.15)
    # L shape: a tall shaft at the heel plus a low foot with a rounded toe.
    shaft = _box(u, v, (x0 + x1) / 2, (shaft_top + sole_bot) / 2, (x1 - x0) / 2, (sole_bot - shaft_top) / 2, r=0.06)
    foot = _box(
        u,
        v,
        (x1 - 0.95) / 2,
        (foot_top + sole_bot) / 2,
        (x1 + 0.95) / 2,
        (sole_bot - foot_top) / 2,
        r=_unif(rng, n, 0.15, 0.28),
    )
    seam = np.minimum(
        _segment(u, v, -0.95, sole_bot - sole_h, x1, sole_bot - sole_h),
        _segment(u, v, x0 + 0.12, shaft_top + 0.1, x0 + 0.12, foot_top + 0.1),
    )
    return np.minimum(shaft, foot), seam


# Indexed by label, in CLASS_NAMES order.
_SHAPES: tuple[ShapeFn, ...] = (
    _t_shirt,
    _trouser,
    _pullover,
    _dress,
    _coat,
    _sandal,
    _shirt,
    _sneaker,
    _bag,
    _ankle_boot,
)


# --------------------------------------------------------------------------
# Pose and shading, shared by all classes.
# --------------------------------------------------------------------------
def _canonical_coords(n: int, rng: np.random.Generator):
    """Per-image canonical (u, v) grids under a random similarity+shear pose.

    Returns (u, v, px_per_unit); u, v are (n, 28, 28) and px_per_unit (n, 1, 1)
    converts canonical distances back to pixels for anti-aliasing and strokes.
    """
    scale = _unif(rng, n, 0.86, 1.04) * _PX_PER_UNIT
    aspect = np.exp(_unif(rng, n, -0.08, 0.08))
    rot = _unif(rng, n, -0.12, 0.12)  # about +-7 degrees
    shear = _unif(rng, n, -0.12, 0.12)
    tx, ty = _unif(rng, n, -1.5, 1.5), _unif(rng, n, -1.5, 1.5)
    # Pixel centres relative to the image centre; y grows downwards like v.
    p = np.arange(IMAGE_SIZE, dtype=np.float32) - (IMAGE_SIZE - 1) / 2
    x = p[None, None, :] - tx
    y = p[None, :, None] - ty
    # Invert pose: undo translation, rotation, shear, then anisotropic scale.
    c, s = np.cos(rot), np.sin(rot)
    xr, yr = c * x + s * y, c * y - s * x
    u = (xr - shear * yr) / (scale * aspect)
    v = yr / (scale / aspect)
    return u.astype(np.float32), v.astype(np.float32), scale


def _texture(u, v, rng):
    """Multiplicative fabric texture: plain, stripes or checks, per image."""
    n = u.shape[0]
    kind = rng.integers(0, 3, size=(n, 1, 1))
    freq = _unif(rng, n, 1.5, 5.0)  # cycles per canonical unit: 2.5-8 px period
    ang, phase1, phase2 = (
        _unif(rng, n, 0.0, np.pi),
        _unif(rng, n, 0.0, 2 * np.pi),
        _unif(rng, n, 0.0, 2 * np.pi),
    )
    amp = _unif(rng, n, 0.08, 0.35)
    c, s = np.cos(ang), np.sin(ang)
    stripes = np.sin(2 * np.pi * freq * (c * u + s * v) + phase1)
    across = np.sin(2 * np.pi * freq * (c * v - s * u) + phase2)
    pattern = np.where(kind == 1, stripes, np.where(kind == 2, stripes * across, 0.0))
    return 1.0 + amp * pattern


def _shade(u, v, dist_px, seam_px, rng):
    """Turn outline/seam distances (pixels) into intensities in [0, 1]."""
    n = u.shape[0]
    # Anti-aliased coverage: background stays exactly 0, like Fashion-MNIST.
    alpha = np.clip(0.5 - dist_px, 0.0, 1.0)
    base = _unif(rng, n, 0.35, 0.95)
    light = 1.0 + _unif(rng, n, -0.15, 0.15) * u + _unif(rng, n, -0.2, 0.2) * v
    # Outline stroke: a band just inside the edge, brighter or darker than the fill.
    width = _unif(rng, n, 0.7, 1.8)
    gain = np.where(rng.random((n, 1, 1)) < 0.5, _unif(rng, n, 0.45, 0.75), _unif(rng, n, 1.25, 1.6)).astype(np.float32)
    edge = np.clip(width + 0.5 + dist_px, 0.0, 1.0)
    stroke = 1.0 + (gain - 1.0) * edge
    # Seams (hems, openings, soles) are darker lines inside the silhouette.
    seam_gain = _unif(rng, n, 0.3, 0.7)
    seam = 1.0 - (1.0 - seam_gain) * np.clip(1.0 - seam_px / 0.9, 0.0, 1.0)
    noise = rng.standard_normal(size=u.shape, dtype=np.float32) * _unif(rng, n, 0.02, 0.07)
    value = base * _texture(u, v, rng) * light * stroke * seam + noise
    return alpha * np.clip(value, 0.0, 1.0)


def draw_garments(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draws one garment-like silhouette per label.

    Args:
      labels: int array of shape (N,), values in [0, 10) (see CLASS_NAMES).
      rng: source of all randomness; the same labels and generator state always
        give the same images.

    Returns:
      uint8 array of shape (N, 28, 28, 1), background 0.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES)):
        raise ValueError(f"labels must be a 1-D array of ints in [0, {NUM_CLASSES})")
    n = labels.shape[0]
    u, v, px_per_unit = _canonical_coords(n, rng)
    dist = np.empty_like(u)
    seam = np.full_like(u, np.inf)
    # Per-class parameters are drawn in class order, so the draw stays a pure
    # function of (labels, rng state).
    for cls, shape_fn in enumerate(_SHAPES):
        idx = np.flatnonzero(labels == cls)
        if idx.size == 0:
            continue
        d, s = shape_fn(u[idx], v[idx], rng)
        dist[idx] = d
        if s is not None:
            seam[idx] = s
    intensity = _shade(u, v, dist * px_per_unit, seam * px_per_unit, rng)
    return np.round(intensity * 255.0).astype(np.uint8)[..., None]


# --------------------------------------------------------------------------
# TFDS builder.
# --------------------------------------------------------------------------
@dataclasses.dataclass
class GarmentShapesConfig(tfds.core.BuilderConfig):
    """Config: how many examples to draw per split, and the base seed."""

    num_train: int = 0
    num_test: int = 0
    seed: int = 0
    brightness: float = 1.0  # pixel gain (clipped to 255): a shifted variant for drift checks


class GarmentShapes(tfds.core.GeneratorBasedBuilder):
    """Synthetic garment silhouettes (28x28 grey, 10 classes), drawn locally."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: procedurally drawn garments."}
    BUILDER_CONFIGS = [
        GarmentShapesConfig(
            name="full",
            num_train=60_000,
            num_test=10_000,
            seed=20240,
            description="60,000 train / 10,000 test (Fashion-MNIST sized).",
        ),
        GarmentShapesConfig(
            name="small",
            num_train=2_000,
            num_test=500,
            seed=20240,
            description="2,000 train / 500 test, for tests and quick runs.",
        ),
        GarmentShapesConfig(
            name="small_bright",
            num_train=2_000,
            num_test=500,
            seed=20241,
            brightness=1.8,
            description="Like small (other draws), every pixel 1.8x brighter: a deliberately "
            "shifted dataset for drift checks.",
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "full"

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Synthetic dataset, NOT Fashion-MNIST: procedurally drawn 28x28 "
                "grey-scale garment-like silhouettes in 10 classes named after "
                "Fashion-MNIST's, with random proportions, pose, outline stroke, "
                "fabric texture, brightness and pixel noise. Generated locally "
                "from a seed; nothing is downloaded."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
                    "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        """No download: both splits are drawn, each from its own derived seed."""
        del dl_manager
        cfg = self.builder_config
        return {
            "train": self._generate_examples(cfg.num_train, (cfg.seed, 0)),
            "test": self._generate_examples(cfg.num_test, (cfg.seed, 1)),
        }

    def _generate_examples(self, num_examples: int, seed: tuple[int, int]) -> Iterator:
        """Yields (index, example); labels are exactly balanced, then shuffled."""
        rng = np.random.default_rng(list(seed))
        labels = rng.permutation(np.arange(num_examples) % NUM_CLASSES)
        for start in range(0, num_examples, _CHUNK):
            chunk = labels[start : start + _CHUNK]
            images = draw_garments(chunk, rng)
            if self.builder_config.brightness != 1.0:
                images = np.clip(np.rint(images * self.builder_config.brightness), 0, 255).astype(np.uint8)
            for i, (image, label) in enumerate(zip(images, chunk, strict=False)):
                yield start + i, {"image": image, "label": int(label)}
