"""End to end: the whole pipeline (LocalDagRunner) on garment_shapes/full against standalone
`sparse-ae train` for the same epochs, each as a fresh process; wall time and peak memory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

# Runs a command and prints the peak resident memory (KiB) of its process tree's largest member.
_MEASURE = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
            "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")


def measured(command: List[str]) -> dict:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {result.stderr[-2000:]}")
    peak_kib = int([line for line in result.stdout.splitlines() if line.startswith("MAXRSS")][-1].split()[1])
    return {"seconds": time.perf_counter() - started, "peak_memory_gib": peak_kib / 2**20}


def pipeline_command(dataset: str, data_dir: str, epochs: int, work: str, extra: List[str] = ()) -> List[str]:
    sparse_ae = os.path.join(os.path.dirname(sys.executable), "sparse-ae")
    return [sparse_ae, "pipeline", "run", "--dataset", dataset, "--set", f"dataset.data_dir={data_dir}",
            "--set", "dataset.download=false", "--set", f"model.epochs={epochs}",
            "--set", f"pipeline_root={work}/root", "--set", f"serving_dir={work}/serving",
            *[item for pair in (("--set", value) for value in extra) for item in pair]]


def growth(data_dir: Optional[str], dataset: str = "garment_shapes/full", epochs: int = 5,
           totals: List[int] = (10_000, 35_000, 70_000)) -> dict:
    """Pipeline wall time at several dataset sizes (train:eval kept at 6:1 through TFDS slices);
    the fixed overhead is the intercept of a least-squares line through the points."""
    import numpy as np

    data_dir = os.path.abspath(data_dir or "tfds_data")
    points = {}
    for total in totals:
        train, test = total * 6 // 7, total // 7
        mapping = json.dumps({f"train[:{train}]": "train", f"test[:{test}]": "eval"})
        with tempfile.TemporaryDirectory() as work:
            points[total] = measured(pipeline_command(dataset, data_dir, epochs, work,
                                                      [f"dataset.split_mapping={mapping}"]))
    sizes = np.array(list(points), float)
    seconds = np.array([point["seconds"] for point in points.values()])
    slope, intercept = np.polyfit(sizes, seconds, 1)
    residual = float(np.max(np.abs(seconds - (slope * sizes + intercept)) / seconds))
    return {
        "description": "pipeline wall time (fresh process, imports included) against dataset size",
        "sizes": {"dataset": dataset, "epochs": epochs, "totals": list(totals)},
        "ours": {"name": "sparse-ae pipeline run", "points": {str(k): v for k, v in points.items()}},
        "baseline": {"name": "least-squares line through the points", "fixed_seconds": float(intercept),
                     "seconds_per_1000_images": float(slope * 1000), "max_relative_deviation": residual},
        "ratio": residual,
        "goal": "close to linear (ratio = largest relative deviation from the line); fixed overhead stated",
    }


def run(data_dir: Optional[str], dataset: str = "garment_shapes/full", epochs: int = 5) -> dict:
    sparse_ae = os.path.join(os.path.dirname(sys.executable), "sparse-ae")
    data_dir = os.path.abspath(data_dir or "tfds_data")
    with tempfile.TemporaryDirectory() as work:
        standalone = measured([sparse_ae, "train", "--dataset", dataset, "--data-dir", data_dir, "--offline",
                               "--epochs", str(epochs), "--output", os.path.join(work, "standalone")])
        pipeline = measured(pipeline_command(dataset, data_dir, epochs, work))
    return {
        "description": "wall time and peak RSS (largest process) of fresh processes, imports included",
        "sizes": {"dataset": dataset, "epochs": epochs},
        "ours": {"name": "sparse-ae pipeline run (LocalDagRunner)", **pipeline},
        "baseline": {"name": "sparse-ae train (standalone)", **standalone},
        "ratio": pipeline["seconds"] / standalone["seconds"],
        "goal": "wall-time ratio <= 1.5, pipeline peak memory <= 4 GiB",
    }
