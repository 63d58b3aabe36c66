"""One local run at a time per pipeline root: an exclusive, non-blocking lock held for the whole run
(and for a promotion or rollback, pipeline/promotion.py, which must not publish during a run).

Two LocalDagRunner runs on one root would write one sqlite ML Metadata store and one set of
artifact folders at once; the second run is refused instead. The lock is `flock` on
`<pipeline_root>/.run.lock`, so the kernel releases it when the holder exits or is killed: a
crashed run never leaves a stale lock. The file itself stays (deleting it would let two runs
lock two different files); it holds the last holder's pid, host and start time, for the message.
Only this module's standard-library imports: the CLI takes the lock before the slow TFX import.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager

from pipeline_config import PipelineConfig

LOCK_FILE = ".run.lock"

_held: dict[str, int] = {}  # lock path -> nesting depth in this process (re-entrant: CLI, then run_local)


class PipelineRootBusy(RuntimeError):
    """Another run (or a promotion or rollback) holds the pipeline root."""

    def __init__(self, root: str, holder: str):
        super().__init__(
            f"pipeline root {root} is in use by another run ({holder}); "
            f"wait for it to finish, or set another pipeline_root"
        )
        self.root, self.holder = root, holder


def lock_path(pipeline_root: str) -> str:
    return os.path.join(os.path.abspath(pipeline_root), LOCK_FILE)


def _holder(fd: int) -> str:
    """The holder's own line; it writes it right after locking, so wait a moment for it."""
    for _ in range(20):
        text = os.pread(fd, 1024, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.05)
    return "holder unknown"


@contextlib.contextmanager
def pipeline_root_lock(pipeline_root: str) -> Iterator[str]:
    """Hold the root's lock for the block; raises PipelineRootBusy at once if another process holds it."""
    path = lock_path(pipeline_root)
    if path in _held:
        _held[path] += 1
        try:
            yield path
        finally:
            _held[path] -= 1
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's line stays readable
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineRootBusy(os.path.dirname(path), _holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(),
            0,
        )
        _held[path] = 1
        try:
            yield path
        finally:
            del _held[path]
    finally:
        os.close(fd)  # releases the lock


def run_lock(config: PipelineConfig) -> AbstractContextManager[str]:
    """The lock of a local run of config: in its pipeline root (beside the sqlite store when the root is remote)."""
    config = config.absolute()
    remote = "://" in config.pipeline_root
    return pipeline_root_lock(os.path.dirname(config.resolved_metadata_path) if remote else config.pipeline_root)
