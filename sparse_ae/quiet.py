"""A quiet terminal: library chatter goes to a log file, the project's own lines to the terminal.

TensorFlow's C++ logging ("Unable to register cuDNN factory", "Could not find cuda drivers"),
Beam's worker processes and other native code write straight to file descriptor 2, so filtering
Python's logging cannot catch them. Quiet mode therefore points descriptor 2 (inherited by every
subprocess, Beam's workers included) at a log file and gives Python a new `sys.stderr` on a
duplicate of the original terminal: Python-level errors, tracebacks and our one-line messages
still reach the terminal, Python's logging records reach the log (ERROR and above the terminal
too), and warnings (`warnings.warn`) become log records. `--verbose` changes nothing: every
library writes where it would by default.

A command that has a run folder moves the log there (`attach`); otherwise the log lives in a
temporary file that is deleted when the command succeeds and kept (its path printed) when not.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import sys
import tempfile
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers whose INFO records come by the dozen at import with nothing to act on (Beam's "Using Any for
# unsupported type" for each typing hint it meets): the terminal shows their warnings only, even with
# --verbose; the log file keeps everything.
IMPORT_CHATTER = ("apache_beam.typehints.native_type_compatibility",)

_active: QuietTerminal | None = None


class TerminalHandler(logging.Handler):
    """Python's logging records on the terminal from `level` up (sys.stderr looked up at emit time,
    so that the quiet terminal's stream and test captures are honoured)."""

    def __init__(self, level: int):
        super().__init__(logging.NOTSET)  # filters (the pipeline's progress lines) see every record
        self.threshold = level
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < self.threshold or (
            record.levelno < logging.WARNING and record.name.startswith(IMPORT_CHATTER)
        ):
            return
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001  (never let a log line break the run, as logging.Handler does)
            self.handleError(record)


class QuietTerminal:
    """Context manager around a command: quiet (library output into a log file) unless verbose."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose
        self.path: str | None = None  # the log file (None: verbose, or no redirection possible)
        self.attached = False  # the log was moved to a run's folder: always kept
        self.failed = False  # set by the command on a failure (not bad input): a temporary log is kept
        self.terminal_handler = TerminalHandler(logging.INFO if verbose else logging.ERROR)
        self._saved_fd: int | None = None
        self._saved_stderr: TextIO | None = None
        self._log_stream: io.TextIOBase | None = None
        self._file_handler: logging.Handler | None = None
        self._root_level = logging.root.level

    # -- start and stop

    def __enter__(self) -> QuietTerminal:
        global _active
        _active = self
        root = logging.getLogger()
        # Before any library's import: TensorFlow then adds no handler of its own.
        root.addHandler(self.terminal_handler)
        root.setLevel(logging.INFO)
        if not self.verbose:
            try:
                self._redirect()
            except OSError:  # no descriptor 2 to redirect: at least TF's C++ logging stays silent
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        return self

    def _redirect(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="sparse-ae-", suffix=".log")
        sys.stderr.flush()
        self._saved_fd = os.dup(2)
        self._saved_stderr = sys.stderr
        if _fileno(sys.stderr) == 2:  # the real stderr: keep Python's writes on the terminal
            sys.stderr = open(
                os.dup(self._saved_fd),
                "w",
                buffering=1,
                encoding=sys.stderr.encoding or "utf-8",
                errors="backslashreplace",
            )
        os.dup2(fd, 2)
        os.close(fd)
        self._log_stream = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
        self._file_handler = logging.StreamHandler(self._log_stream)
        self._file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(self._file_handler)
        logging.captureWarnings(True)  # Google client libraries' FutureWarnings and the like: into the log

    def __exit__(self, kind, error, traceback) -> None:
        global _active
        # Bad input (exit status 2, argparse's included) is one line of ours: no log to point at.
        failed = self.failed or (kind is not None and not (kind is SystemExit and error.code in (0, 2, None)))
        self.close(failed)
        _active = None

    def close(self, failed: bool) -> None:
        """Undo the redirection; delete a temporary log after success, point at it after a failure."""
        root = logging.getLogger()
        root.removeHandler(self.terminal_handler)
        root.setLevel(self._root_level)
        if self._saved_fd is None:
            return
        assert self._file_handler is not None and self._log_stream is not None  # set with _saved_fd
        logging.captureWarnings(False)
        root.removeHandler(self._file_handler)
        self._log_stream.close()
        if sys.stderr is not self._saved_stderr:
            sys.stderr.close()
        sys.stderr = self._saved_stderr
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        self._saved_fd = None
        if self.path and not self.attached and "://" not in self.path:
            if failed:
                print(f"library messages of this command: {self.path}", file=sys.stderr)
            else:
                os.remove(self.path)

    # -- a run's own log file

    def attach(self, path: str) -> str | None:
        """Move the log to path (a local file, in a run's folder) and keep it; return where the log is.

        A remote path (gs://...) keeps the local file, whose path is returned.
        """
        if self._saved_fd is None:
            return None
        assert self.path is not None and self._log_stream is not None  # set with _saved_fd
        self.attached = True
        if "://" in path:
            return self.path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._log_stream.flush()
        with open(self.path, "rb") as spool, open(path, "ab") as log:
            shutil.copyfileobj(spool, log)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
        os.remove(self.path)
        self.path = os.path.abspath(path)
        return self.path

    def rename(self, path: str) -> str | None:
        """Give the attached log its final name (the run id is known only after the run); return it."""
        if not self.attached or self.path is None or "://" in path or "://" in self.path:
            return self.path
        os.replace(self.path, path)  # descriptor 2 follows the file
        self.path = os.path.abspath(path)
        return self.path


def active() -> QuietTerminal | None:
    """The quiet terminal of the running command, if any."""
    return _active


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
