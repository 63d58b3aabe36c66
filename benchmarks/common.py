"""Shared benchmark plumbing: environment facts and the result file."""
from __future__ import annotations

import json
import os
import platform
import time
from typing import Any, Dict

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def environment() -> Dict[str, Any]:
    """Library versions and machine facts that the figures depend on."""
    import apache_beam
    import tensorflow as tf
    import tf_keras
    import tfx

    return {"cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "tf_keras": tf_keras.__version__, "tfx": tfx.__version__,
            "apache_beam": apache_beam.__version__,
            "gpus": len(tf.config.list_physical_devices("GPU"))}


def write_result(name: str, result: Dict[str, Any], results_dir: str = RESULTS_DIR) -> str:
    """Write <results_dir>/<name>.json with the environment and a timestamp; returns the path."""
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, f"{name}.json")
    payload = {"benchmark": name, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "environment": environment(), **result}
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2)
    return path
