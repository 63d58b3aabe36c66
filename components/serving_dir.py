"""The TF Serving model directory: <base_directory>/<version>/ folders, read and published safely.

Shared by the ServingPusher's executor, the live-model resolver strategy
(components/live_model_strategy.py) and promotion/rollback (pipeline/promotion.py). Publishing
differs from TFX's Pusher executor:
- Never half-written: on a local disk the model is copied into a hidden staging folder beside
  the versions and renamed into place. On an object store (gs://, s3://) a folder rename is a
  copy per object, not atomic, and TF Serving polls the folder (tensorflow/tfx#4466): there the
  model is copied straight into its version folder with saved_model.pb last, since TF Serving
  (and `sparse_ae.serving_layout`, which reads the folder for everyone) sees a version only once
  saved_model.pb is there.
- No duplicates: when the live (highest) version is the very same SavedModel (same fingerprint),
  as after a rerun whose evaluation re-blessed an unchanged model, nothing new is published.
- Versions strictly increase and a number is never issued twice: a new version is above every
  version folder present, the highest version ever issued here (the empty `.issued-<version>`
  marker, written before the copy starts, so a version deleted by hand does not free its number) and the versions the
  caller knows from ML Metadata (`recorded`: promotion and rollback pass them; they survive even
  a serving folder emptied by hand). TF Serving may have served a number already: the same
  number with other contents would be a different model under one name.
- Faults: the model is archived into the PushedModel artifact before it is published, so a
  full disk there publishes nothing; a failed copy into serving (disk full, unwritable folder)
  removes what it wrote and raises `PublishError` naming the serving folder and the error. A push
  in progress is marked by `.staging-<version>-<host>-<pid>` (the staging folder itself on a local
  disk, an empty marker object beside the version on an object store); what a killed push leaves
  is never seen as a version and is removed by the next push from the same host, or by any push
  once it is older than STALE_STAGING_S.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable

from absl import logging
from tfx.dsl.io import fileio
from tfx.utils import io_utils

from sparse_ae.serving_layout import SAVED_MODEL_FILES, is_complete, listed_names, version_folders

STAGING_PREFIX = ".staging-"  # .staging-<version>-<host>-<pid>: hidden from TF Serving and from serving_versions
FINGERPRINT = "fingerprint.pb"
ISSUED_PREFIX = ".issued-"  # .issued-<version>: the highest version number ever issued here, hidden from TF Serving
STALE_STAGING_S = 24 * 3600  # a push marker this old belongs to a dead push, whichever host wrote it


class PublishError(RuntimeError):
    """A model could not be published; the versions already in the serving folder are untouched."""


def same_saved_model(path_a: str, path_b: str) -> bool:
    """True when both SavedModels carry the same fingerprint (graph, signatures and weights)."""
    files = [os.path.join(path, FINGERPRINT) for path in (path_a, path_b)]
    return all(fileio.exists(f) for f in files) and io_utils.read_bytes_file(files[0]) == io_utils.read_bytes_file(
        files[1]
    )


def _staging_owner(name: str) -> tuple[str, str, int] | None:
    """(version, host, pid) of the push that owns staging folder or marker `name`; None for anything else."""
    if not name.startswith(STAGING_PREFIX):
        return None
    version, _, owner = name[len(STAGING_PREFIX) :].partition("-")
    host, _, pid = owner.rpartition("-")
    return (version, host, int(pid)) if host and pid.isdigit() else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _age_s(path: str) -> float | None:
    """Seconds since path was last modified; None where the filesystem does not say."""
    try:
        mtime_nsec = fileio.stat(path).mtime_nsec
    except Exception:  # noqa: BLE001  (gone meanwhile, or no stat on this filesystem)
        return None
    return time.time() - mtime_nsec / 1e9 if mtime_nsec else None


def _is_stale(base_directory: str, name: str, owner: tuple[str, str, int]) -> bool:
    """A push of this host whose process is gone, or any push marker older than STALE_STAGING_S."""
    _, host, pid = owner
    if host == socket.gethostname() and not _process_alive(pid):
        return True
    age = _age_s(os.path.join(base_directory, name))
    return age is not None and age > STALE_STAGING_S


def remove_stale_staging(base_directory: str) -> list[str]:
    """Delete what killed pushes left: their staging folders, and on an object store their marker
    and the incomplete version folder (no saved_model.pb) it names.

    Another host's recent one, or a live process's, may be a push in progress and is left alone.
    """
    removed: list[str] = []
    for name in listed_names(base_directory):
        owner = _staging_owner(name)
        if owner is None or not _is_stale(base_directory, name, owner):
            continue
        version_path = os.path.join(base_directory, owner[0])
        if owner[0].isdigit() and fileio.isdir(version_path) and not is_complete(version_path):
            _remove_quietly(version_path)
        if _remove_quietly(os.path.join(base_directory, name)):  # a leftover never blocks a push
            removed.append(name)
    return removed


def _is_remote(path: str) -> bool:
    return "://" in path


def _is_local(*paths: str) -> bool:
    return not any(_is_remote(path) for path in paths)


def _copy_tree(source: str, target: str) -> None:
    """Copy a local folder to a local folder file by file, so the first OS error surfaces as itself
    (shutil.copytree gathers them into one list). Local by definition: only for _is_local paths."""
    if not os.path.isdir(source):  # local by definition (see above)
        raise FileNotFoundError(errno.ENOENT, "no SavedModel folder", source)
    for folder, _, files in os.walk(source):  # local by definition
        out = os.path.join(target, os.path.relpath(folder, source))
        os.makedirs(out, exist_ok=True)  # local by definition
        for name in files:
            shutil.copyfile(os.path.join(folder, name), os.path.join(out, name))  # local by definition


def _model_files(source: str) -> list[str]:
    """Paths of every file under a SavedModel folder (any filesystem), relative to it, with the
    top-level saved_model.pb(txt) last."""
    if not fileio.isdir(source):
        raise FileNotFoundError(errno.ENOENT, "no SavedModel folder", source)
    found: list[str] = []
    for listed, _, files in fileio.walk(source):
        folder = os.fsdecode(listed)
        relative = os.path.relpath(folder, source) if folder.rstrip("/") != source.rstrip("/") else ""
        found.extend(os.path.join(relative, os.fsdecode(name)) for name in files)
    # Listings of prefix-keyed stores can invent entries: TensorFlow's ram:// lists an empty
    # `assets/` beside `assets.extra/` as a file `assets/.extra`. Copy only what exists.
    found = [path for path in found if fileio.exists(os.path.join(source, path))]
    return sorted(found, key=lambda path: path in SAVED_MODEL_FILES)


def copy_model(source: str, target: str) -> None:
    """Copy a SavedModel through TFX's file layer (any filesystem), saved_model.pb last: a poller
    that waits for it never sees the model before its variables."""
    for relative in _model_files(source):
        destination = os.path.join(target, relative)
        fileio.makedirs(os.path.dirname(destination))
        fileio.copy(os.path.join(source, relative), destination, overwrite=False)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)  # local by definition: only after a local copy
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: str) -> None:
    """Flush the copied files and their folders to disk before the rename makes them a version."""
    for folder, _, files in os.walk(path):  # local by definition: the local staging folder
        for name in files + ["."]:
            _fsync(os.path.join(folder, name))


def _reason(error: BaseException) -> str:
    """The OS error in words, e.g. 'No space left on device: /srv/models/.staging-.../variables.data'."""
    if isinstance(error, OSError) and error.strerror:
        path = error.filename2 or error.filename  # copyfile names the source first, then the target
        return f"{error.strerror}: {path}" if path else error.strerror
    return str(error) or type(error).__name__  # TF file errors may carry no message


def _now_s() -> int:
    """The clock new versions start from: seconds since the epoch, TF Serving's usual numbering."""
    return int(time.time())


def issued_version(base_directory: str) -> int | None:
    """The highest version number ever issued in the folder (its `.issued-<version>` marker), None
    when none was. The number is in the name: creating an empty object is one step on any store."""
    if not fileio.isdir(base_directory):
        return None
    numbers = [name[len(ISSUED_PREFIX) :] for name in listed_names(base_directory) if name.startswith(ISSUED_PREFIX)]
    return max((int(number) for number in numbers if number.isdigit()), default=None)


def next_version(base_directory: str, recorded: Iterable[int] = ()) -> int:
    """A version number never used before: above every version folder (complete or not), the
    highest number issued here and every `recorded` one; the clock's seconds when those are lower."""
    used = [*version_folders(base_directory), *recorded]
    issued = issued_version(base_directory)
    highest = max(used + ([issued] if issued is not None else []), default=-1)
    return max(_now_s(), highest + 1)


def _mark_issued(base_directory: str, version: int) -> Callable[[], object]:
    """Mark version issued before anything of it is copied (unless a higher one is); returns what
    removes the mark again, for a publication that fails (then nothing was ever visible under it)."""
    previous = issued_version(base_directory)
    if previous is not None and version <= previous:
        return lambda: None
    marker = os.path.join(base_directory, f"{ISSUED_PREFIX}{version}")
    io_utils.write_string_file(marker, "")  # writing "" creates the file
    return lambda: _remove_quietly(marker)


def _forget_older_marks(base_directory: str) -> None:
    """Keep only the highest `.issued-` marker (a stopped publication may leave two)."""
    highest = issued_version(base_directory)
    for name in listed_names(base_directory):
        number = name[len(ISSUED_PREFIX) :]
        if name.startswith(ISSUED_PREFIX) and number.isdigit() and int(number) != highest:
            _remove_quietly(os.path.join(base_directory, name))


def _staging_name(version: int) -> str:
    return f"{STAGING_PREFIX}{version}-{socket.gethostname()}-{os.getpid()}"


def _publish_by_rename(model_path: str, base_directory: str, version: int, written: list[str]) -> str:
    """Local serving folder: copy into a staging folder, flush, rename into place (atomic)."""
    staging = os.path.join(base_directory, _staging_name(version))
    final = os.path.join(base_directory, str(version))
    written.append(staging)
    if _is_local(
        model_path
    ):  # OS calls: real error messages (TF's file layer reports a full disk as a bare OutOfRangeError)
        _copy_tree(model_path, staging)
    else:
        copy_model(model_path, staging)
    _fsync_tree(staging)
    os.rename(staging, final)  # local by definition; fails rather than replace a non-empty folder
    return final


def _publish_in_place(model_path: str, base_directory: str, version: int, written: list[str]) -> str:
    """Object store: no atomic rename, so copy into the version folder itself, saved_model.pb last,
    under a marker object that names the push for remove_stale_staging."""
    final = os.path.join(base_directory, str(version))
    if fileio.exists(final):
        raise FileExistsError(errno.EEXIST, "File exists", final)  # never replaces a published version
    marker = os.path.join(base_directory, _staging_name(version))
    written.append(marker)
    io_utils.write_string_file(marker, final)
    written.append(final)
    copy_model(model_path, final)
    written.remove(final)  # complete: a failure from here on must not delete it
    _remove_quietly(marker)
    return final


def publish(model_path: str, base_directory: str, version: int | None = None, recorded: Iterable[int] = ()) -> str:
    """Copy a SavedModel to <base>/<version>, never visible half-copied (see the module docstring);
    returns the path. Without a version: `next_version(base_directory, recorded)`.

    Raises PublishError (the OS error, e.g. no space left or permission denied) after removing
    what it wrote; the versions already there are never modified.
    """
    written: list[str] = []
    unmark: Callable[[], object] = lambda: None  # noqa: E731
    local = _is_local(base_directory)
    try:
        if local:
            os.makedirs(base_directory, exist_ok=True)  # local by definition: OS errors in words
        else:
            fileio.makedirs(base_directory)
        remove_stale_staging(base_directory)
        version = version or next_version(base_directory, recorded)
        unmark = _mark_issued(base_directory, version)
        publish_one = _publish_by_rename if local else _publish_in_place
        final = publish_one(model_path, base_directory, version, written)
    except BaseException as error:
        for path in reversed(written):
            _remove_quietly(path)
        unmark()
        if isinstance(error, Exception):
            raise PublishError(
                f"could not publish the model to {base_directory}: {_reason(error)} "
                f"(the versions already there are untouched)"
            ) from error
        raise
    _forget_older_marks(base_directory)
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
            copy_model(model_path, uri)
    except Exception as error:
        raise PublishError(
            f"could not archive the model into {uri}: {_reason(error)} "
            f"(nothing was published; the versions already serving are untouched)"
        ) from error


def _remove_quietly(path: str) -> bool:
    """Delete a staging folder, marker or incomplete version; a failure is logged (the push's own
    outcome matters more)."""
    try:
        if fileio.isdir(path):
            fileio.rmtree(path)
        elif fileio.exists(path):
            fileio.remove(path)
        return True
    except Exception as error:  # noqa: BLE001
        logging.warning("Could not remove the staging folder %s: %s", path, error)
        return False
