"""The project folder's settings file: the `--set` keys (pipeline_root, serving_dir, dataset.name,
dataset.data_dir, ...) that the last `sparse-ae pipeline run` in this folder used, read back by every
command as its defaults, so that after `make demo` the demo's pipeline is the one the other commands act on.

It holds overrides of the one configuration (pipeline_config.py, sparse_ae/config.py), never settings
of its own: defaults < preset < this file < the command's flags and --set. `SPARSE_AE_SETTINGS`
names another file (the tests give each test its own).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from pydantic import BaseModel

from sparse_ae.errors import ConfigError

SETTINGS_FILE = "sparse-ae.json"
SETTINGS_ENV = "SPARSE_AE_SETTINGS"
# Keys whose values are paths: written relative to the settings file's folder when inside it,
# read back relative to it, so that the project folder can be moved or copied whole.
PATH_KEYS = ("pipeline_root", "serving_dir", "metadata_path", "dataset.data_dir")


def settings_path() -> str:
    """The settings file: $SPARSE_AE_SETTINGS, else sparse-ae.json in the working directory."""
    return os.path.abspath(os.environ.get(SETTINGS_ENV) or SETTINGS_FILE)


def _is_local(value: Any) -> bool:
    return isinstance(value, str) and "://" not in value


def read_settings() -> dict[str, Any]:
    """Dotted key -> value from the settings file ({} when there is none); paths made absolute."""
    path = settings_path()
    if not os.path.isfile(path):  # local by definition: the project folder
        return {}
    try:
        with open(path) as handle:  # local by definition
            values = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"settings file {path}: {error} (fix it or delete it)") from None
    if not isinstance(values, dict):
        raise ConfigError(f"settings file {path}: expected an object of --set keys and values")
    folder = os.path.dirname(path)
    return {
        key: os.path.normpath(os.path.join(folder, value)) if key in PATH_KEYS and _is_local(value) else value
        for key, value in values.items()
    }


def write_settings(values: dict[str, Any]) -> bool:
    """Merge dotted key -> value into the settings file (None values left out); True when it changed."""
    path = settings_path()
    folder = os.path.dirname(path)
    current = read_settings()
    merged = dict(current)
    for key, value in values.items():
        if value is not None:
            merged[key] = os.path.abspath(value) if key in PATH_KEYS and _is_local(value) else value
    if merged == current and os.path.isfile(path):
        return False

    def stored(key: str, value: Any) -> Any:
        if key in PATH_KEYS and _is_local(value):
            relative = os.path.relpath(value, folder)
            return value if relative.startswith("..") else relative
        return value

    # A whole file or none: two runs in one folder (on two roots) may write at once, and a reader
    # must never see half of it. Local by definition: the project folder.
    handle, temporary = tempfile.mkstemp(prefix=f".{SETTINGS_FILE}.", dir=folder)
    with os.fdopen(handle, "w") as stream:
        json.dump({key: stored(key, value) for key, value in sorted(merged.items())}, stream, indent=2)
        stream.write("\n")
    os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the project's settings from its other users
    os.replace(temporary, path)
    return True


def settings_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The settings file's values for a config class, nested as its fields are; keys it lacks are
    left out (`train` takes dataset.* from the file, not pipeline_root)."""
    result: dict[str, Any] = {}
    for key, value in read_settings().items():
        *sections, name = key.split(".")
        owner: type[BaseModel] = model
        target = result
        for section in sections:
            info = owner.model_fields.get(section)
            nested = info.annotation if info else None
            if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
                break
            owner, target = nested, target.setdefault(section, {})
        else:
            if name in owner.model_fields:
                target[name] = value
    return result
