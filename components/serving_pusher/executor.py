"""Pushes a blessed SavedModel to <base_directory>/<version>/ in TF Serving's layout.

Differences from TFX's Pusher executor:
- Atomic: the model is copied into a hidden staging folder beside the versions and renamed into
  place, so a model server (or a reader) never sees a half-copied version.
- No duplicates: when the live (highest) version is the very same SavedModel (same fingerprint),
  as after a rerun whose evaluation re-blessed an unchanged model, nothing new is published.
- Versions strictly increase, even when two pushes fall in the same second.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

STAGING_PREFIX = ".staging-"
FINGERPRINT = "fingerprint.pb"


def serving_versions(base_directory: str) -> List[int]:
    """Published version numbers (numeric folder names), ascending."""
    if not fileio.exists(base_directory):
        return []
    return sorted(int(name.rstrip("/")) for name in fileio.listdir(base_directory) if name.rstrip("/").isdigit())


def same_saved_model(path_a: str, path_b: str) -> bool:
    """True when both SavedModels carry the same fingerprint (graph, signatures and weights)."""
    files = [os.path.join(path, FINGERPRINT) for path in (path_a, path_b)]
    return all(fileio.exists(f) for f in files) and io_utils.read_bytes_file(files[0]) == io_utils.read_bytes_file(files[1])


def publish(model_path: str, base_directory: str, version: Optional[int] = None) -> str:
    """Copy a SavedModel to <base>/<version> through a staging folder and a rename; returns the path."""
    versions = serving_versions(base_directory)
    version = version or max(int(time.time()), (versions[-1] + 1) if versions else 0)
    fileio.makedirs(base_directory)
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}")
    final = os.path.join(base_directory, str(version))
    if fileio.exists(staging):
        fileio.rmtree(staging)
    try:
        io_utils.copy_dir(model_path, staging)
        fileio.rename(staging, final)
    except BaseException:
        if fileio.exists(staging):
            fileio.rmtree(staging)
        raise
    return final


class Executor(tfx_pusher.Executor):
    """Filesystem pushes only; see the module docstring."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("ServingPusher pushes to a filesystem destination only")
        base = destination.filesystem.base_directory

        versions = serving_versions(base)
        live = os.path.join(base, str(versions[-1])) if versions else None
        if live and same_saved_model(model_path, live):
            logging.info("Model is already live as %s; nothing new published.", live)
            model_push.set_int_custom_property("already_live", 1)
            serving_path = live
        else:
            serving_path = publish(model_path, base)
            logging.info("Model published to %s.", serving_path)
        io_utils.copy_dir(model_path, model_push.uri)  # archive, as TFX's Pusher does
        self._MarkPushed(model_push, pushed_destination=serving_path,
                         pushed_version=os.path.basename(serving_path))
