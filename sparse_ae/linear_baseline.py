"""The linear baseline: PCA with as many components as latent units, scored like the model.

An autoencoder with a code of k numbers must beat the best linear code of k numbers, PCA, to be
worth its training: this module fits PCA on a split (streaming, one pass, float64 sums) and
scores it on another with the same per-image PSNR as the model (`sparse_ae.metrics`), the PCA
reconstruction clipped to the pixel range [-1, 1] as the model's tanh output is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from sparse_ae.metrics import MAX_VAL, MIN_MSE


@dataclasses.dataclass(frozen=True)
class LinearBaseline:
    """PCA of images scaled to [-1, 1]: mean (D,) and orthonormal components (D, k), float32."""

    mean: np.ndarray
    components: np.ndarray
    fitted_on: int  # images in the fitting split

    @property
    def code_size(self) -> int:
        return int(self.components.shape[1])

    def truncated(self, code_size: int) -> LinearBaseline:
        """PCA of the first code_size components (PCA is nested: the best k-component code is the
        first k of a larger one)."""
        if not 0 < code_size <= self.code_size:
            raise ValueError(f"truncated: code_size must be in 1..{self.code_size}, got {code_size}")
        return dataclasses.replace(self, components=np.ascontiguousarray(self.components[:, :code_size]))

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """Project images (N, ...) in [-1, 1] onto the components and back, clipped to [-1, 1]."""
        flat = images.reshape(len(images), -1).astype(np.float32) - self.mean
        restored = (flat @ self.components) @ self.components.T + self.mean
        return np.clip(restored, -1.0, 1.0).reshape(images.shape)


def scaled(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] images -> float32 in [-1, 1] (the model's input scaling); floats pass through."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    return images.astype(np.float32)


def fit_pca(batches: Iterable[np.ndarray], code_size: int) -> LinearBaseline:
    """PCA of a stream of image batches (uint8, or floats in [-1, 1]) in one pass.

    Accumulates the sum and the Gram matrix in float64 (memory D x D, flat in the image count),
    then takes the top code_size eigenvectors of the covariance.
    """
    count = 0
    total: np.ndarray | None = None
    gram: np.ndarray | None = None
    for batch in batches:
        flat = scaled(np.asarray(batch)).reshape(len(batch), -1).astype(np.float64)
        if total is None or gram is None:
            total, gram = np.zeros(flat.shape[1]), np.zeros((flat.shape[1], flat.shape[1]))
        count += len(flat)
        total += flat.sum(axis=0)
        gram += flat.T @ flat
    if not count or total is None or gram is None:
        raise ValueError("fit_pca: the split has no images")
    if code_size > len(total):
        raise ValueError(f"fit_pca: code_size {code_size} exceeds the {len(total)} pixels of an image")
    mean: np.ndarray = total / count
    covariance = gram / count - np.outer(mean, mean)
    _, vectors = np.linalg.eigh(covariance)  # eigenvalues ascending
    top = vectors[:, ::-1][:, :code_size]
    return LinearBaseline(mean.astype(np.float32), np.ascontiguousarray(top, dtype=np.float32), count)


def psnr_per_image(targets: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-image PSNR (dB) in numpy, the definition of sparse_ae.metrics."""
    squared = (targets.reshape(len(targets), -1) - reconstructions.reshape(len(targets), -1)) ** 2
    mse = np.maximum(squared.mean(axis=1), MIN_MSE)
    return 10.0 * np.log10(MAX_VAL**2 / mse)


def score(baseline: LinearBaseline, batches: Iterable[np.ndarray]) -> dict[str, float]:
    """Mean per-image PSNR and MSE of the baseline over a stream of image batches."""
    count, psnr_sum, mse_sum = 0, 0.0, 0.0
    for batch in batches:
        images = scaled(np.asarray(batch))
        restored = baseline.reconstruct(images)
        psnr_sum += float(psnr_per_image(images, restored).sum())
        mse_sum += float(((images - restored) ** 2).reshape(len(images), -1).mean(axis=1).sum())
        count += len(images)
    if not count:
        raise ValueError("score: the split has no images")
    return {"psnr": psnr_sum / count, "mse": mse_sum / count, "images": count}


def summary(baseline: LinearBaseline, eval_scores: dict[str, float], dataset: str | None = None) -> dict:
    """The `linear_baseline` entry of metrics.json and the run summary."""
    return {
        "method": "pca",
        "code_size": baseline.code_size,
        "fitted_on_images": baseline.fitted_on,
        "eval_images": int(eval_scores["images"]),
        "eval_psnr": eval_scores["psnr"],
        "eval_mse": eval_scores["mse"],
        **({"dataset": dataset} if dataset else {}),
    }


def fit_and_score(
    fit_batches: Iterable[np.ndarray],
    eval_batches: Iterable[np.ndarray],
    code_size: int,
    dataset: str | None = None,
) -> tuple[LinearBaseline, dict]:
    """PCA fitted on one stream of image batches and scored on another: (baseline, summary dict)."""
    baseline = fit_pca(fit_batches, code_size)
    return baseline, summary(baseline, score(baseline, eval_batches), dataset)


def fit_on_tfds(
    dataset: str,
    fit_split: str,
    eval_split: str,
    code_size: int,
    data_dir: str | None = None,
    download: bool = True,
    batch_size: int = 4096,
) -> tuple[LinearBaseline, dict]:
    """PCA of code_size components fitted on one TFDS split and scored on another: (baseline, summary dict)."""
    from sparse_ae.data import load_images  # local: TFDS only for this entry point

    def batches(split: str):
        return load_images(dataset, split, data_dir, download).batch(batch_size).as_numpy_iterator()

    return fit_and_score(batches(fit_split), batches(eval_split), code_size, dataset)


def compute(
    dataset: str,
    fit_split: str,
    eval_split: str,
    code_size: int,
    data_dir: str | None = None,
    download: bool = True,
    batch_size: int = 4096,
) -> dict:
    """PCA of code_size components fitted on one TFDS split and scored on another: the summary dict."""
    return fit_on_tfds(dataset, fit_split, eval_split, code_size, data_dir, download, batch_size)[1]
