"""End to end: the whole pipeline (LocalDagRunner) on garment_shapes/full against standalone
`sparse-ae train` for the same epochs, each as a fresh process; wall time and peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.common import fit_line, safe_ratio

# Runs a command and prints the peak resident memory (KiB) of its process tree's largest member.
_MEASURE = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def measured(command: list[str], metadata_path: str | None = None) -> dict:
    """Wall time and memory of a fresh process: the peak RSS of its largest process and the peak of
    the whole process tree's RSS summed (Beam workers included, sampled every 0.2 s); with a
    pipeline's store, where the time went."""
    import psutil

    started_at, started = time.time(), time.perf_counter()
    wrapper = subprocess.Popen(
        [sys.executable, "-c", _MEASURE, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    tree_peak = 0
    with ThreadPoolExecutor(1) as pool:  # drain the pipes while sampling, so the child never blocks
        output = pool.submit(wrapper.communicate)
        root = psutil.Process(wrapper.pid)
        while not output.done():
            tree_peak = max(tree_peak, _tree_rss(root))
            time.sleep(0.2)
        stdout, stderr = output.result()
    if wrapper.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {stderr[-2000:]}")
    peak_kib = int([line for line in stdout.splitlines() if line.startswith("MAXRSS")][-1].split()[1])
    figures: dict[str, Any] = {
        "seconds": time.perf_counter() - started,
        "peak_memory_gib": peak_kib / 2**20,
        "peak_memory_all_processes_gib": tree_peak / 2**30,
    }
    if metadata_path:
        figures["profile"] = component_profile(metadata_path, started_at, started_at + figures["seconds"])
    return figures


def _tree_rss(root) -> int:
    """Bytes resident in root and all its descendants now (processes may vanish meanwhile)."""
    import psutil

    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def component_profile(metadata_path: str, started_at: float, ended_at: float) -> dict[str, float]:
    """Seconds per component (MLMD execution create -> last update), plus the time before the
    first component started (imports, config, pipeline compilation) and after the last ended."""
    from pipeline.run_summary import open_store

    store = open_store(metadata_path)
    types = {t.id: t.name.split(".")[-1] for t in store.get_execution_types()}
    executions = sorted(store.get_executions(), key=lambda e: e.create_time_since_epoch)
    profile = {"before_first_component": executions[0].create_time_since_epoch / 1000 - started_at}
    for execution in executions:
        profile[types[execution.type_id]] = (
            execution.last_update_time_since_epoch - execution.create_time_since_epoch
        ) / 1000
    last_end = max(e.last_update_time_since_epoch for e in executions) / 1000
    profile["after_last_component"] = ended_at - last_end
    # Launcher work outside executions: input resolution, cache lookups, MLMD bookkeeping.
    profile["between_components"] = (last_end - executions[0].create_time_since_epoch / 1000) - sum(
        (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000 for e in executions
    )
    return profile


SPARSE_AE = os.path.join(os.path.dirname(sys.executable), "sparse-ae")


def settings(dataset: str, data_dir: str, epochs: int, *extra: str) -> list[str]:
    """--dataset and --set items shared by the standalone and the pipeline command, offline."""
    items = [f"dataset.data_dir={data_dir}", "dataset.download=false", f"model.epochs={epochs}", *extra]
    return ["--dataset", dataset, *[part for item in items for part in ("--set", item)]]


def pipeline_command(dataset: str, data_dir: str, epochs: int, work: str, extra: Sequence[str] = ()) -> list[str]:
    root = [f"pipeline_root={work}/root", f"serving_dir={work}/serving"]
    return [SPARSE_AE, "pipeline", "run", *settings(dataset, data_dir, epochs, *root, *extra)]


def growth(
    data_dir: str | None,
    dataset: str = "garment_shapes/full",
    epochs: int = 5,
    totals: Sequence[int] = (10_000, 35_000, 70_000),
) -> dict:
    """Pipeline wall time at several dataset sizes (train:eval kept at 6:1 through TFDS slices);
    the fixed overhead is the intercept of a least-squares line through the points."""
    import numpy as np

    data_dir = os.path.abspath(data_dir or "tfds_data")
    points = {}
    for total in totals:
        train, test = total * 6 // 7, total // 7
        mapping = json.dumps({f"train[:{train}]": "train", f"test[:{test}]": "eval"})
        with tempfile.TemporaryDirectory() as work:
            points[total] = measured(
                pipeline_command(dataset, data_dir, epochs, work, [f"dataset.split_mapping={mapping}"])
            )
    sizes = np.array(list(points), float)
    seconds = np.array([point["seconds"] for point in points.values()])
    slope, intercept = np.polyfit(sizes, seconds, 1)
    residual = float(np.max(np.abs(seconds - (slope * sizes + intercept)) / seconds))
    # None where noise wins
    line = fit_line({int(size): float(value) for size, value in zip(sizes, seconds, strict=False)})
    return {
        "description": "pipeline wall time (fresh process, imports included) against dataset size",
        "sizes": {"dataset": dataset, "epochs": epochs, "totals": list(totals)},
        "ours": {"name": "sparse-ae pipeline run", "points": {str(k): v for k, v in points.items()}},
        "baseline": {
            "name": "least-squares line through the points",
            "fixed_seconds": line["fixed_s"],
            "seconds_per_1000_images": line["per_example_ms"],
            "max_relative_deviation": residual,
            **({"note": line["note"]} if "note" in line else {}),
        },
        "ratio": residual,
        "goal": "close to linear (ratio = largest relative deviation from the line); fixed overhead stated",
    }


def _median_run(samples: list[dict]) -> dict:
    """The sample of median wall time (its profile and memory), with every sample's seconds and
    the peak memory of all of them."""
    ordered = sorted(samples, key=lambda sample: sample["seconds"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["seconds_samples"] = [sample["seconds"] for sample in samples]
    for key in ("peak_memory_gib", "peak_memory_all_processes_gib"):
        median[key] = max(sample[key] for sample in samples)
    return median


def run(data_dir: str | None, dataset: str = "garment_shapes/full", epochs: int = 5, repeats: int = 3) -> dict:
    """Standalone training and the pipeline, `repeats` times each, one after the other (a slow
    spell of the machine hits both), compared by their median wall times: on a shared machine one
    standalone run's time varied by half from one run to the next (docs/benchmarks.md)."""
    data_dir = os.path.abspath(data_dir or "tfds_data")
    standalone_samples, pipeline_samples = [], []
    with tempfile.TemporaryDirectory() as work:
        for repeat in range(repeats):
            standalone_samples.append(
                measured(
                    [
                        SPARSE_AE,
                        "train",
                        *settings(dataset, data_dir, epochs),
                        "--output",
                        os.path.join(work, f"standalone_{repeat}"),
                    ]
                )
            )
            root = f"{work}/pipeline_{repeat}"  # a fresh root each time: every run trains, none is cached
            pipeline_samples.append(
                measured(pipeline_command(dataset, data_dir, epochs, root), f"{root}/root/metadata.sqlite")
            )
        standalone, pipeline = _median_run(standalone_samples), _median_run(pipeline_samples)
        # The pipeline chooses Beam's mode (pipeline/beam_args.py); the same run in multi-processing
        # mode, one worker per core, shows what the other choice costs here (once: it is no goal).
        multi = measured(
            pipeline_command(
                dataset,
                data_dir,
                epochs,
                f"{work}/multi_processing",
                ["beam_pipeline_args=--direct_running_mode=multi_processing,--direct_num_workers=0"],
            ),
            f"{work}/multi_processing/root/metadata.sqlite",
        )
    return {
        "description": "wall time and peak RSS (largest process) of fresh processes, imports included; "
        f"medians of {repeats} runs each, interleaved",
        "sizes": {"dataset": dataset, "epochs": epochs, "repeats": repeats},
        "ours": {"name": "sparse-ae pipeline run (LocalDagRunner, Beam mode chosen)", **pipeline},
        "multi_processing_beam": {
            "name": "sparse-ae pipeline run, multi-processing Beam",
            **multi,
            "ratio": safe_ratio(multi["seconds"], standalone["seconds"]),
        },
        "baseline": {"name": "sparse-ae train (standalone)", **standalone},
        "ratio": safe_ratio(pipeline["seconds"], standalone["seconds"]),  # None: not measurable
        "goal": "wall-time ratio <= 1.5, pipeline peak memory (all processes) <= 4 GiB",
    }
