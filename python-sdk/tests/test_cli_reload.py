"""``covet run --reload``: the gateway runs as a child, gets SIGHUP when a *.py file
changes, and gets the SIGTERM/SIGINT sent to ``covet run``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from covet import _reload

APP = '''from covet import Covet, Request

app = Covet("reload-test")


@app.get("/")
async def root(req: Request) -> str:
    return "hi"
'''


def wait_for(cond: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def recording_gateway(tmp_path: Path) -> tuple[Path, Path]:
    """A fake gateway that logs START, each SIGHUP and SIGTERM (then exits 0)."""
    log = tmp_path / "signals.log"
    gw = tmp_path / "fake-gateway"
    gw.write_text(
        f"#!{sys.executable}\n"
        "import os, signal, sys, time\n"
        f"log = open({str(log)!r}, 'a', buffering=1)\n"
        "signal.signal(signal.SIGHUP, lambda s, f: log.write('HUP\\n'))\n"
        "def term(s, f):\n"
        "    log.write('TERM\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "log.write('START ' + ' '.join(sys.argv[1:]) + '\\n')\n"
        "while True:\n"
        "    time.sleep(0.05)\n"
    )
    gw.chmod(0o755)
    return gw, log


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_reload_sighups_the_gateway_once_per_change_and_forwards_sigterm(tmp_path: Path) -> None:
    app_dir = tmp_path / "proj"
    app_dir.mkdir()
    app_file = app_dir / "reload_app.py"
    app_file.write_text(APP)
    gw, log = recording_gateway(tmp_path)
    stderr = tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVET_")}
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "covet", "run", "reload_app:app", "--reload", "--workers", "1",
             "--port", "8765", "--gateway", str(gw)],
            cwd=app_dir, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        assert wait_for(lambda: any(x.startswith("START ") for x in lines(log))), stderr.read_text()
        assert "--listen 127.0.0.1:8765" in lines(log)[0]
        assert wait_for(lambda: "watching" in stderr.read_text()), stderr.read_text()

        # Not a *.py file, or a file in __pycache__ / a hidden directory: no reload.
        (app_dir / "notes.txt").write_text("x")
        (app_dir / "__pycache__").mkdir(exist_ok=True)
        (app_dir / "__pycache__" / "junk.py").write_text("x = 1\n")
        (app_dir / ".hidden").mkdir()
        (app_dir / ".hidden" / "junk.py").write_text("x = 1\n")
        time.sleep(3 * _reload.POLL_INTERVAL)
        assert lines(log).count("HUP") == 0

        # Touching the app file: exactly one SIGHUP.
        st = app_file.stat()
        os.utime(app_file, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        assert wait_for(lambda: lines(log).count("HUP") >= 1), stderr.read_text()
        time.sleep(3 * _reload.POLL_INTERVAL)
        assert lines(log).count("HUP") == 1, lines(log)
        assert "reload_app.py changed" in stderr.read_text()

        # A new module is a change too.
        (app_dir / "helpers.py").write_text("y = 2\n")
        assert wait_for(lambda: lines(log).count("HUP") == 2), lines(log)

        # SIGTERM to covet run reaches the gateway; covet exits with its status.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert lines(log)[-1] == "TERM"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_reload_forwards_sigint(tmp_path: Path) -> None:
    gw, log = recording_gateway(tmp_path)
    # The fake gateway exits 130 on SIGINT (Python's KeyboardInterrupt default is a
    # traceback and status 1; make it explicit).
    gw.write_text(gw.read_text().replace(
        "signal.signal(signal.SIGTERM, term)\n",
        "signal.signal(signal.SIGTERM, term)\n"
        "signal.signal(signal.SIGINT, lambda s, f: (log.write('INT\\n'), os._exit(130)))\n",
    ))  # fmt: skip
    (tmp_path / "reload_app.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVET_")}
    proc = subprocess.Popen([sys.executable, "-m", "covet", "run", "reload_app:app", "--reload",
                             "--gateway", str(gw)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert wait_for(lambda: any(x.startswith("START ") for x in lines(log)))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert "INT" in lines(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_snapshot_skips_hidden_and_cache_directories(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "b.py").write_text("")
    (tmp_path / "pkg" / "c.txt").write_text("")
    for skipped in (".git", "__pycache__", ".venv", "node_modules"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "x.py").write_text("")
    got = _reload.snapshot([tmp_path])
    assert sorted(os.path.relpath(p, tmp_path) for p in got) == ["a.py", os.path.join("pkg", "b.py")]
