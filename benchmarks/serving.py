"""Serving throughput: the exported SavedModel's `reconstruct` signature at batch 1 and 256,
against the Keras model's `predict_on_batch` on the same images."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from benchmarks import fixtures
from benchmarks.common import safe_ratio
from sparse_ae.config import SparseAEConfig


def images_per_second(call: Callable, batch: np.ndarray, seconds: float = 2.0) -> float:
    """Calls per wall second times the batch size, after a warm-up."""
    for _ in range(3):  # warm-up
        call(batch)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call(batch)
        count += len(batch)
    return count / (time.perf_counter() - started)


def run(data_dir: str | None, dataset: str = "garment_shapes/full") -> dict:
    config = SparseAEConfig()
    images, _ = fixtures.dataset_arrays(dataset, "test", data_dir, limit=2048)
    scaled = images.astype(np.float32) / 127.5 - 1
    result: dict[str, Any] = {
        "description": "images/s, SavedModel signature vs Keras predict_on_batch",
        "by_batch": {},
        "ours": {"name": "SavedModel signatures['reconstruct']", "images_per_s": {}},
        "baseline": {"name": "Keras model.predict_on_batch", "images_per_s": {}},
    }
    with tempfile.TemporaryDirectory() as work:
        model = fixtures.trained_model(images, config)
        signature = tf.saved_model.load(fixtures.exported(model, work)).signatures["reconstruct"]
        for batch_size in (1, 256):
            batch = scaled[:batch_size]
            ours = images_per_second(lambda b: signature(images=tf.constant(b)), batch)
            baseline = images_per_second(model.predict_on_batch, batch)
            result["ours"]["images_per_s"][str(batch_size)] = ours
            result["baseline"]["images_per_s"][str(batch_size)] = baseline
            result["by_batch"][str(batch_size)] = {"ratio": safe_ratio(ours, baseline)}
    result["sizes"] = {"batches": [1, 256], "dataset": dataset}
    ratios = [item["ratio"] for item in result["by_batch"].values()]
    result["ratio"] = None if None in ratios else min(ratios)  # None: not measurable
    result["goal"] = ">= 0.9 at each batch size"
    return result
