"""What importing the runner loads: only what a run uses (module names, never times).

Each check runs in a fresh interpreter: this test process has imported much more already.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Never imported on the path of a run (the Tuner's Keras 3 and plots, InfraValidator's Kubernetes
# client, TFMA's Jupyter widgets, the BulkInferrer and its TensorFlow Serving APIs unless
# scoring.bulk_inference asks for it).
ABSENT = (
    "keras_tuner",
    "keras",
    "matplotlib",
    "kubernetes",
    "ipywidgets",
    "IPython.terminal",
    "tfx.components.bulk_inferrer",
    "tensorflow_serving",
)
# Imported by TFX, TFMA, TFDV or Beam, but their code runs only when used (components/deferred_imports.py).
NOT_RUN = (
    "tfx.components",
    "nltk",
    "nltk.stem",
    "google.cloud.bigquery",
    "tqdm.notebook",
    "tensorflow_model_analysis.view",
    "IPython",
)

_SCRIPT = """
import json, sys
import pipeline.local_runner
from components.deferred_imports import is_deferred

def state(names):
    return {name: "deferred" if is_deferred(name) else ("loaded" if name in sys.modules else "absent")
            for name in names}

after_import = state(%(names)r)
# The deferred packages still work when used: their real code runs then.
from tfx.components import Evaluator, Tuner
from tfx.components.tuner.component import Tuner as TunerClass
import IPython, nltk
import tensorflow_model_analysis as tfma
used = {"tuner": Tuner is TunerClass, "evaluator": Evaluator.__name__, "no_shell": IPython.get_ipython() is None,
        "nltk_download": callable(nltk.download), "tfma_view": callable(tfma.view.render_slicing_metrics)}
print(json.dumps({"after_import": after_import, "used": used, "after_use": state(%(names)r)}))
"""


def _run(script: str) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh interpreter imports the runner
def test_runner_import_leaves_out_what_a_run_does_not_use():
    found = _run(_SCRIPT % {"names": ABSENT + NOT_RUN})
    after_import = found["after_import"]
    assert {name: after_import[name] for name in ABSENT} == {name: "absent" for name in ABSENT}
    assert all(after_import[name] in ("absent", "deferred") for name in NOT_RUN), after_import
    assert after_import["tfx.components"] == "deferred"  # TFX's own resolver code imports it
    # Asked for, each deferred package is the real one.
    assert found["used"] == {
        "tuner": True,
        "evaluator": "Evaluator",
        "no_shell": True,
        "nltk_download": True,
        "tfma_view": True,
    }
    after_use = found["after_use"]
    assert {name: after_use[name] for name in ("tfx.components", "nltk", "tensorflow_model_analysis.view")} == {
        "tfx.components": "loaded",
        "nltk": "loaded",
        "tensorflow_model_analysis.view": "loaded",
    }, after_use
    assert (
        after_use["IPython"] == "deferred" and after_use["IPython.terminal"] == "absent"
    )  # get_ipython() runs no shell
