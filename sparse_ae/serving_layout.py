"""The TF Serving model folder, read one way by everyone: `score`, the pusher, the live-model
resolver, `models`, `promote` and `rollback`.

<serving_dir>/<version>/ holds one SavedModel per version, a non-negative integer; TF Serving
serves the highest complete one. A version is complete once its saved_model.pb (or .pbtxt) is
there: publishers copy that file last, so a numeric folder without it is a copy in progress or a
killed one, never a version. Other entries (hidden staging folders and markers) are not versions.

Only tf.io.gfile (paths may be remote, e.g. gs://), no TFX: sparse_ae/ must not import it, and
components/serving_dir.py, which publishes, reads the folder through this module.
"""

from __future__ import annotations

import os

import tensorflow as tf

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")  # TF Serving loads a version once one is there

# The signatures sparse_ae.export writes into every SavedModel it exports.
SERVING_DEFAULT = "serving_default"  # serialized tf.Examples
RECONSTRUCT = "reconstruct"  # float images in [-1, 1]
RECONSTRUCT_UINT8 = "reconstruct_uint8"  # uint8 images in [0, 255]


def listed_names(directory: str) -> list[str]:
    """The entry names of a folder on any filesystem, as text, without the trailing '/' that
    object stores add to folders."""
    return [os.fsdecode(name).rstrip("/") for name in tf.io.gfile.listdir(directory)]


def version_folders(serving_dir: str) -> list[int]:
    """Numeric folder names, ascending, complete or not."""
    if not tf.io.gfile.isdir(serving_dir):
        return []
    return sorted(
        int(name)
        for name in listed_names(serving_dir)
        if name.isdigit() and tf.io.gfile.isdir(os.path.join(serving_dir, name))
    )


def is_complete(version_dir: str) -> bool:
    """True when the folder holds a saved_model.pb(txt): what TF Serving waits for."""
    return any(tf.io.gfile.exists(os.path.join(version_dir, name)) for name in SAVED_MODEL_FILES)


def serving_versions(serving_dir: str) -> list[int]:
    """The versions, ascending: numeric folders holding a SavedModel."""
    return [version for version in version_folders(serving_dir) if is_complete(version_path(serving_dir, version))]


def normalize_path(path: str) -> str:
    """os.path.normpath for local paths; URIs only lose trailing slashes (normpath turns gs:// into gs:/)."""
    return path.rstrip("/") if "://" in path else os.path.normpath(path)  # local by definition here


def version_path(serving_dir: str, version: int) -> str:
    """<serving_dir>/<version>, normalized as normalize_path does."""
    return normalize_path(os.path.join(serving_dir, str(version)))


def live_version(serving_dir: str) -> int | None:
    """The version TF Serving serves (the highest complete one); None when there is none."""
    versions = serving_versions(serving_dir)
    return versions[-1] if versions else None


def live_path(serving_dir: str) -> str | None:
    """<serving_dir>/<live version>; None when nothing is served."""
    version = live_version(serving_dir)
    return None if version is None else version_path(serving_dir, version)
