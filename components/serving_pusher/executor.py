"""Pushes a blessed SavedModel to <base_directory>/<version>/ in TF Serving's layout.

Differences from TFX's Pusher executor:
- Atomic: the model is copied into a hidden staging folder beside the versions and renamed into
  place, so a model server (or a reader) never sees a half-copied version.
- No duplicates: when the live (highest) version is the very same SavedModel (same fingerprint),
  as after a rerun whose evaluation re-blessed an unchanged model, nothing new is published.
- Versions strictly increase, even when two pushes fall in the same second.
- Faults: the model is archived into the PushedModel artifact before it is published, so a
  full disk there publishes nothing; a failed copy into serving (disk full, unwritable folder)
  removes its staging folder and raises `PublishError` naming the serving folder and the OS error; a staging folder left by a killed
  push is never seen as a version and is removed by the next push from the same host.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import time
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

STAGING_PREFIX = ".staging-"  # .staging-<version>-<host>-<pid>: hidden from TF Serving and from serving_versions
FINGERPRINT = "fingerprint.pb"


class PublishError(RuntimeError):
    """A model could not be published; the versions already in the serving folder are untouched."""


def serving_versions(base_directory: str) -> List[int]:
    """Published version numbers (numeric folder names), ascending; staging folders are not versions."""
    if not fileio.isdir(base_directory):
        return []
    names = [name.rstrip("/") for name in fileio.listdir(base_directory)]
    return sorted(int(name) for name in names
                  if name.isdigit() and fileio.isdir(os.path.join(base_directory, name)))


def same_saved_model(path_a: str, path_b: str) -> bool:
    """True when both SavedModels carry the same fingerprint (graph, signatures and weights)."""
    files = [os.path.join(path, FINGERPRINT) for path in (path_a, path_b)]
    return all(fileio.exists(f) for f in files) and io_utils.read_bytes_file(files[0]) == io_utils.read_bytes_file(files[1])


def _staging_owner(name: str) -> Optional[Tuple[str, int]]:
    """(host, pid) of the push that owns staging folder `name`; None for anything else."""
    if not name.startswith(STAGING_PREFIX):
        return None
    _, _, owner = name[len(STAGING_PREFIX):].partition("-")
    host, _, pid = owner.rpartition("-")
    return (host, int(pid)) if host and pid.isdigit() else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_staging(base_directory: str) -> List[str]:
    """Delete staging folders left by killed pushes: those of this host whose process is gone.

    Another host's, or a live process's, may be a push in progress and are left alone.
    """
    host, removed = socket.gethostname(), []
    for name in (n.rstrip("/") for n in fileio.listdir(base_directory)):
        owner = _staging_owner(name)
        if owner and owner[0] == host and not _process_alive(owner[1]):
            if _remove_quietly(os.path.join(base_directory, name)):  # a leftover never blocks a push
                removed.append(name)
    return removed


def _is_local(*paths: str) -> bool:
    return not any("://" in path for path in paths)


def _copy_tree(source: str, target: str) -> None:
    """Copy a folder file by file, so the first OS error surfaces as itself (shutil.copytree
    gathers them into one list)."""
    if not os.path.isdir(source):
        raise FileNotFoundError(errno.ENOENT, "no SavedModel folder", source)
    for folder, _, files in os.walk(source):
        out = os.path.join(target, os.path.relpath(folder, source))
        os.makedirs(out, exist_ok=True)
        for name in files:
            shutil.copyfile(os.path.join(folder, name), os.path.join(out, name))


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: str) -> None:
    """Flush the copied files and their folders to disk before the rename makes them a version."""
    for folder, _, files in os.walk(path):
        for name in files + ["."]:
            _fsync(os.path.join(folder, name))


def _reason(error: BaseException) -> str:
    """The OS error in words, e.g. 'No space left on device: /srv/models/.staging-.../variables.data'."""
    if isinstance(error, OSError) and error.strerror:
        path = error.filename2 or error.filename  # copyfile names the source first, then the target
        return f"{error.strerror}: {path}" if path else error.strerror
    return str(error) or type(error).__name__  # TF file errors may carry no message


def publish(model_path: str, base_directory: str, version: Optional[int] = None) -> str:
    """Copy a SavedModel to <base>/<version> through a staging folder and a rename; returns the path.

    Raises PublishError (the OS error, e.g. no space left or permission denied) after removing
    its staging folder; the versions already there are never modified.
    """
    staging = None
    try:
        local = _is_local(model_path, base_directory)
        if local:
            os.makedirs(base_directory, exist_ok=True)
        else:
            fileio.makedirs(base_directory)
        remove_stale_staging(base_directory)
        versions = serving_versions(base_directory)
        version = version or max(int(time.time()), (versions[-1] + 1) if versions else 0)
        staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}-{socket.gethostname()}-{os.getpid()}")
        final = os.path.join(base_directory, str(version))
        if local:  # OS calls: real error messages (TF's file layer reports a full disk as a bare OutOfRangeError)
            _copy_tree(model_path, staging)
            _fsync_tree(staging)
            os.rename(staging, final)  # fails rather than replace a non-empty folder
        else:
            io_utils.copy_dir(model_path, staging)
            fileio.rename(staging, final)
    except BaseException as error:
        if staging is not None:
            _remove_quietly(staging)
        if isinstance(error, Exception):
            raise PublishError(f"could not publish the model to {base_directory}: {_reason(error)} "
                               f"(the versions already there are untouched)") from error
        raise
    if local:
        try:
            _fsync(base_directory)  # the rename itself; the version is published either way
        except OSError as error:
            logging.warning("Could not flush %s to disk: %s", base_directory, error)
    return final


def archive(model_path: str, uri: str) -> None:
    """Copy the model into the PushedModel artifact; PublishError (with the OS error) if that fails."""
    try:
        if _is_local(model_path, uri):
            _copy_tree(model_path, uri)
        else:
            io_utils.copy_dir(model_path, uri)
    except Exception as error:
        raise PublishError(f"could not archive the model into {uri}: {_reason(error)} "
                           f"(nothing was published; the versions already serving are untouched)") from error


def _remove_quietly(path: str) -> bool:
    """Delete a staging folder; a failure is logged (the push's own outcome matters more)."""
    try:
        if fileio.exists(path):
            fileio.rmtree(path)
        return True
    except Exception as error:  # noqa: BLE001
        logging.warning("Could not remove the staging folder %s: %s", path, error)
        return False


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

        # Archive (as TFX's Pusher does) before publishing: when that fails (disk full) nothing
        # has gone live without a PushedModel to record it.
        archive(model_path, model_push.uri)
        versions = serving_versions(base)
        live = os.path.join(base, str(versions[-1])) if versions else None
        if live and same_saved_model(model_path, live):
            logging.info("Model is already live as %s; nothing new published.", live)
            model_push.set_int_custom_property("already_live", 1)
            serving_path = live
        else:
            serving_path = publish(model_path, base)
            logging.info("Model published to %s.", serving_path)
        self._MarkPushed(model_push, pushed_destination=serving_path,
                         pushed_version=os.path.basename(serving_path))
        record_calibration(model_push, serving_path)


def record_calibration(artifact: types.Artifact, model_dir: str) -> None:
    """Copy the calibration stored in the SavedModel folder onto the PushedModel artifact (ML Metadata):
    `anomaly_threshold`, `anomaly_quantile` and the whole record as JSON in `calibration`."""
    from sparse_ae.calibration import CALIBRATION_FILE

    path = os.path.join(model_dir, CALIBRATION_FILE)
    if not fileio.exists(path):  # a model exported before calibrations existed
        return
    content = io_utils.read_string_file(path)
    calibration = json.loads(content)
    artifact.set_float_custom_property("anomaly_threshold", float(calibration["threshold"]))
    artifact.set_float_custom_property("anomaly_quantile", float(calibration["quantile"]))
    artifact.set_string_custom_property("calibration", content)
