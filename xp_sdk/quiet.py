"""Keep native libraries' chatter off an embedded client's stderr.

MediaPipe (absl), TensorFlow Lite and OpenCV write straight to file descriptor 2 while models load and run
("WARNING: Logging before InitGoogle()", "Created TensorFlow Lite XNNPACK delegate", "[ WARN:0@1.2] global
net_impl_backend.cpp…"): noise in a program that merely called ``client.animate``. While an embedded operation runs,
``native_stderr_captured`` points descriptor 2 at the null device; Python's own ``sys.stderr`` keeps writing to the
real one, so warnings and tracebacks still show.

Left alone when logging is configured (the root logger has a handler: that program reads its stderr as a log) and
when ``XP_DEBUG`` is set. Process-wide and counted: parallel operations share one capture, released by the last.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

NATIVE_LOG_VARIABLES = {
    "OPENCV_LOG_LEVEL": "ERROR",
    "GLOG_minloglevel": "2",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
"""What native libraries read, once, when they are first loaded; set (where the caller has not) before any is."""

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_saved_stderr: TextIO | None = None
_replacement: TextIO | None = None


def quiet_native_logging_defaults() -> None:
    """Ask the native libraries for errors only, where the environment does not already say otherwise."""
    if _wanted():
        for name, value in NATIVE_LOG_VARIABLES.items():
            os.environ.setdefault(name, value)


@contextmanager
def native_stderr_captured() -> Iterator[None]:
    """Descriptor 2 to the null device while the block runs (see the module's documentation for when not)."""
    if not _acquire():
        yield
        return
    try:
        yield
    finally:
        _release()


def _wanted() -> bool:
    from xp_sdk.variables import environment

    return environment("debug") is None and not logging.getLogger().handlers


def _acquire() -> bool:
    global _depth, _saved_fd, _saved_stderr, _replacement
    with _lock:
        if _depth > 0:
            _depth += 1
            return True
        if not _wanted():
            return False
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return False  # no descriptor 2 to keep (a service without one, an odd sys.stderr)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        _saved_fd, _saved_stderr = saved, sys.stderr
        _replacement = open(saved, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = _replacement
        _depth = 1
        return True


def _release() -> None:
    global _depth, _saved_fd, _saved_stderr, _replacement
    with _lock:
        _depth -= 1
        if _depth > 0 or _saved_fd is None:
            return
        if _replacement is not None:
            _replacement.flush()
            _replacement.close()
        if _saved_stderr is not None:
            sys.stderr = _saved_stderr
        os.dup2(_saved_fd, 2)
        os.close(_saved_fd)
        _saved_fd, _saved_stderr, _replacement = None, None, None
