"""Importing the project changes nothing in other libraries; the process setup does, explicitly.

Each import check runs in a fresh interpreter (this test process has run the setup: conftest.py).
Libraries the project imports change the process themselves (TFX adds an import finder,
tensorflow_transform sets TF_USE_LEGACY_KERAS), so the interpreter imports them first, as a probe
found them, and only what changes after that is the project's doing.
"""

import json
import os
import subprocess
import sys
import warnings

import pytest

from pipeline import process
from sparse_ae import autograph_rules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = ("sparse_ae", "components", "pipeline", "pipeline_config", "benchmarks")
# What a library user, a notebook, an Airflow scheduler or a Beam worker may import.
LIBRARY = ("sparse_ae", "components")
HEAVY = ("sparse_ae.model", "sparse_ae.train", "pipeline.pipeline", "pipeline.local_runner")

_PROBE = """
import json, sys
for name in %(modules)r:
    __import__(name)
project = %(project)r
print("RESULT " + json.dumps([name for name in sys.modules if name.split(".")[0] not in project]))
"""

_SCRIPT = """
import importlib, json, os, sys

def finders():
    return [getattr(finder, "__qualname__", type(finder).__qualname__) for finder in sys.meta_path]

def state():
    from tensorflow.python.autograph.core import config
    import tf_keras
    from tensorflow.python.autograph.impl import conversion

    return {
        "meta_path": finders(),
        "path_hooks": [repr(hook) for hook in sys.path_hooks],
        "environ": dict(os.environ),
        "autograph_rules": [str(rule) for rule in config.CONVERSION_RULES],
        "keras_left_unconverted": conversion.is_allowlisted(tf_keras.Model.fit),
        "module_classes": {name: type(module).__qualname__ for name, module in list(sys.modules.items())},
    }

fresh = {"meta_path": finders(), "environ": dict(os.environ)}
for name in %(library)r:
    importlib.import_module(name)
library = {"meta_path": finders(), "environ": dict(os.environ)}

for name in %(libraries)r:  # what the project's modules import, each first on its own
    try:
        importlib.import_module(name)
    except Exception:
        pass
before = state()
for name in %(heavy)r:
    importlib.import_module(name)
after = state()
after["module_classes"] = {name: after["module_classes"][name] for name in before["module_classes"]}

from pipeline.process import setup

setup()
print("RESULT " + json.dumps({"fresh": fresh, "library": library, "before": before, "after": after, "setup": state()}))
"""


def _python(script: str, env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-"], input=script, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.split("RESULT ", 1)[1])


@pytest.fixture(scope="module")
def imported() -> dict:
    """States of a fresh interpreter without TF_USE_LEGACY_KERAS: fresh, after importing the library
    packages, before and after importing the heavy modules (their libraries imported first), after setup."""
    env = {key: value for key, value in os.environ.items() if key != process.KERAS_2_SWITCH}
    env.update(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    # The probe runs the setup first (TFX needs Keras 2), so that it finds the libraries a run imports.
    libraries = _python(_PROBE % {"modules": ("pipeline.process",) + HEAVY, "project": PROJECT}, {**env})
    return _python(_SCRIPT % {"library": LIBRARY, "libraries": libraries, "heavy": HEAVY}, env)


@pytest.mark.slow  # fresh interpreters import TensorFlow and TFX
def test_importing_the_library_packages_changes_nothing(imported):
    assert imported["library"] == imported["fresh"]
    assert process.KERAS_2_SWITCH not in imported["library"]["environ"]


@pytest.mark.slow
def test_importing_the_model_and_the_pipeline_changes_no_other_library(imported):
    before, after = imported["before"], imported["after"]
    for key in ("meta_path", "path_hooks", "environ", "autograph_rules", "keras_left_unconverted", "module_classes"):
        assert after[key] == before[key], key
    assert not before["keras_left_unconverted"]  # TensorFlow's own rules convert tf_keras


@pytest.mark.slow
def test_setup_leaves_keras_unconverted_and_changes_nothing_else(imported):
    after, done = imported["after"], imported["setup"]
    assert done["keras_left_unconverted"]
    assert done["autograph_rules"] == ["DoNotConvert rule for tf_keras"] + after["autograph_rules"]
    assert done["meta_path"] == after["meta_path"] and done["path_hooks"] == after["path_hooks"]
    keras_2 = {process.KERAS_2_SWITCH: after["environ"].get(process.KERAS_2_SWITCH, "1")}
    assert done["environ"] == {**after["environ"], **keras_2}


@pytest.fixture
def rules_without_keras_2(monkeypatch):
    """AutoGraph's rules as TensorFlow ships them (this process has run the setup)."""
    from tensorflow.python.autograph.core import config

    shipped = tuple(rule for rule in config.CONVERSION_RULES if not rule.matches(autograph_rules.KERAS_2_PACKAGE))
    monkeypatch.setattr(config, "CONVERSION_RULES", shipped)
    return config


def test_the_rule_is_applied_once_on_the_tested_versions(rules_without_keras_2):
    installed = autograph_rules.installed_versions()
    assert autograph_rules.untested_versions(installed) == []  # constraints.txt pins the tested versions
    shipped = rules_without_keras_2.CONVERSION_RULES
    assert autograph_rules.leave_keras_unconverted() and autograph_rules.leave_keras_unconverted()
    assert rules_without_keras_2.CONVERSION_RULES[1:] == shipped
    assert rules_without_keras_2.CONVERSION_RULES[0].matches("tf_keras.src.engine.training")


@pytest.mark.parametrize(
    "installed", [{"tensorflow": "2.17.0", "tf_keras": "2.16.0"}, {"tensorflow": "2.16.2", "tf_keras": "2.15.1"}]
)
def test_the_rule_is_skipped_with_a_warning_on_other_versions(rules_without_keras_2, monkeypatch, installed):
    monkeypatch.setattr(autograph_rules, "installed_versions", lambda: installed)
    shipped = rules_without_keras_2.CONVERSION_RULES
    with pytest.warns(RuntimeWarning, match="untested"):
        assert not autograph_rules.leave_keras_unconverted()
    assert rules_without_keras_2.CONVERSION_RULES == shipped


def test_keras_2_switch_is_kept_when_set_and_set_with_a_warning_after_tensorflow(monkeypatch):
    monkeypatch.setenv(process.KERAS_2_SWITCH, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        process.use_keras_2()  # already on: nothing to say
    monkeypatch.delenv(process.KERAS_2_SWITCH)
    with pytest.warns(RuntimeWarning, match="TensorFlow was imported before"):
        process.use_keras_2()  # this process has imported TensorFlow
    assert os.environ[process.KERAS_2_SWITCH] == "1"
