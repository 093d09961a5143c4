"""``covet run --reload``: restart the workers when the app's source changes.

The gateway runs as a child process; this process polls the modification times of
the ``*.py`` files under the watched directories (stdlib only, no file-system event
library) and, when one is added, removed or modified, sends the gateway ``SIGHUP``.
The gateway then replaces its workers one at a time; it keeps running itself, so its
listening socket and client connections stay up. SIGINT and SIGTERM are forwarded to
the gateway, and this process exits with the gateway's status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Final

__all__ = ["POLL_INTERVAL", "run_with_reload", "snapshot"]

#: Seconds between two scans of the watched files.
POLL_INTERVAL: Final = 0.5

#: Directory names never descended into.
SKIP_DIRS: Final = frozenset({"__pycache__", "node_modules", "site-packages", "venv", ".venv", "build", "dist"})


def snapshot(roots: Iterable[Path]) -> dict[str, int]:
    """Path -> modification time (ns) of every ``*.py`` file under ``roots``, skipping
    hidden directories and the ones in SKIP_DIRS. Files that vanish mid-scan are left out."""
    out: dict[str, int] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS]
            for name in filenames:
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    try:
                        out[path] = os.stat(path).st_mtime_ns
                    except OSError:
                        pass
    return out


def _changed(before: dict[str, int], after: dict[str, int]) -> list[str]:
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def _exit_status(returncode: int) -> int:
    return returncode if returncode >= 0 else 128 - returncode


def run_with_reload(argv: Sequence[str], roots: Sequence[Path], interval: float = POLL_INTERVAL) -> int:
    """Run the gateway ``argv`` as a child; SIGHUP it whenever a ``*.py`` file under
    ``roots`` changes. Returns the exit status to exit with once the gateway has exited."""
    child = subprocess.Popen(list(argv))

    def forward(sig: int, _frame: FrameType | None) -> None:
        try:
            child.send_signal(sig)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        files = snapshot(roots)
        print(f"covet: watching {len(files)} *.py files under {', '.join(map(str, roots))} for changes",
              file=sys.stderr, flush=True)  # fmt: skip
        while True:
            try:
                return _exit_status(child.wait(timeout=interval))
            except subprocess.TimeoutExpired:
                pass
            now = snapshot(roots)
            changed = _changed(files, now)
            files = now
            if not changed:
                continue
            shown = ", ".join(os.path.relpath(p) for p in changed[:3]) + (" ..." if len(changed) > 3 else "")
            print(f"covet: {shown} changed; restarting the workers", file=sys.stderr, flush=True)
            try:
                child.send_signal(signal.SIGHUP)
            except ProcessLookupError:
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:  # this process is leaving by an exception
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
