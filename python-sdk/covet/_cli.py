"""The ``covet`` command line.

::

    covet worker MODULE:ATTR [--app-name NAME]   serve as one worker of a gateway
    covet routes MODULE:ATTR                     print the route table
    covet run MODULE:ATTR [--workers N] [--host H] [--port P] [--gateway PATH] [--reload]
                                                 exec the gateway, which spawns workers
                                                 (--reload: run it as a child and SIGHUP it
                                                 when a *.py file changes: new workers)

``MODULE:ATTR`` is imported the way uvicorn does it: the current directory goes first
on ``sys.path``, ``MODULE`` is imported, and ``ATTR`` (dots allowed) looked up in it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from ._app import Covet

__all__ = ["AppLoadError", "find_gateway", "gateway_argv", "load_app", "main"]

ENV_GATEWAY: Final = "COVET_GATEWAY"
ENV_LOG_LEVEL: Final = "COVET_LOG_LEVEL"
GATEWAY_NAME: Final = "covet-gateway"


class AppLoadError(Exception):
    """``MODULE:ATTR`` does not name a Covet app."""


def load_app(spec: str) -> Covet:
    """Import ``MODULE:ATTR`` (current directory first on sys.path) and return the app."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f'app {spec!r} must be given as "module:attribute", e.g. "main:app"')
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # Only a missing *target* module is the user's typo; a missing dependency of
        # it is a real import error and keeps its traceback.
        if e.name is None or not (module_name == e.name or module_name.startswith(e.name + ".")):
            raise
        raise AppLoadError(f"could not import module {module_name!r} (sys.path[0] is {sys.path[0]!r})") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"attribute {attr!r} not found in module {module_name!r}") from None
    if not isinstance(obj, Covet):
        raise AppLoadError(f"{spec!r} is a {type(obj).__name__}, not a covet.Covet app")
    return obj


def find_gateway(explicit: str | None = None, environ: Any = None) -> str:
    """The gateway binary: ``explicit``, else $COVET_GATEWAY, else ``bin/covet-gateway``
    of the checkout this package lives in (python-sdk/../bin), else ``covet-gateway`` on
    PATH. Raises FileNotFoundError naming every place tried."""
    env = os.environ if environ is None else environ
    tried: list[str] = []
    for candidate in (explicit, env.get(ENV_GATEWAY)):
        if candidate:
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return os.path.abspath(candidate)
            raise FileNotFoundError(f"gateway {candidate!r} is not an executable file")
    beside = Path(__file__).resolve().parent.parent.parent / "bin" / GATEWAY_NAME
    tried.append(str(beside))
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    on_path = shutil.which(GATEWAY_NAME)
    if on_path:
        return on_path
    tried.append(f"{GATEWAY_NAME} on PATH")
    raise FileNotFoundError(
        f"no gateway binary found (tried {', '.join(tried)}); build it with `make build` "
        f"or pass --gateway / set {ENV_GATEWAY}"
    )


def _host_port(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def gateway_argv(gateway: str, spec: str, app_name: str, workers: int, host: str, port: int,
                 worker_app_name: str | None = None) -> list[str]:
    """The gateway's command line (flags agreed with gateway/)."""
    worker_cmd = f"{shlex.quote(sys.executable)} -m covet worker {shlex.quote(spec)}"
    if worker_app_name:
        worker_cmd += f" --app-name {shlex.quote(worker_app_name)}"
    return [
        gateway,
        "--listen", _host_port(host, port),
        "--app", app_name,
        "--workers", str(workers),
        "--worker-cmd", worker_cmd,
        "--worker-dir", os.getcwd(),
    ]  # fmt: skip


def _setup_logging() -> None:
    level = os.environ.get(ENV_LOG_LEVEL, "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(name)s] pid=%(process)d %(message)s",
    )


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return n


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="covet", description="CovetPy: Python handlers behind a Go gateway")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    w = sub.add_parser("worker", help="serve an app as one worker (started by the gateway)")
    w.add_argument("app", metavar="MODULE:ATTR")
    w.add_argument("--app-name", help="name sent to the gateway (default: the app's name)")

    r = sub.add_parser("routes", help="print the app's route table")
    r.add_argument("app", metavar="MODULE:ATTR")

    run = sub.add_parser("run", help="start the gateway, which spawns the workers")
    run.add_argument("app", metavar="MODULE:ATTR")
    run.add_argument("--workers", type=_positive, default=os.cpu_count() or 1,
                     help="worker processes (default: CPU count)")
    run.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")
    run.add_argument("--gateway", help=f"gateway binary (default: ${ENV_GATEWAY}, bin/{GATEWAY_NAME}, PATH)")
    run.add_argument("--app-name", help="app name for the gateway (default: the app's name)")
    run.add_argument("--reload", action="store_true",
                     help="development: restart the workers when a *.py file under the current directory changes")
    return p


def _cmd_worker(args: argparse.Namespace) -> int:
    from ._worker import run_worker

    app = load_app(args.app)
    _setup_logging()  # after the import: an app that configures logging itself wins
    return run_worker(app, app_name=args.app_name or app.name)


def _cmd_routes(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    rows = []
    for route in app.router.routes:
        timeout = "-" if route.timeout_ms is None else f"{route.timeout_ms / 1000:g}s"
        rows.append((route.method, route.pattern.canonical, route.name or "-", timeout))
    header = ("METHOD", "PATH", "NAME", "TIMEOUT")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    gateway = find_gateway(args.gateway)
    name = args.app_name or app.name
    argv = gateway_argv(gateway, args.app, name, args.workers, args.host, args.port, args.app_name)
    print(f"CovetPy serving {args.app} on http://{_host_port(args.host, args.port)} ({args.workers} workers)",
          flush=True)  # fmt: skip
    sys.stderr.flush()
    if args.reload:
        from ._reload import run_with_reload

        return run_with_reload(argv, [Path.cwd()])
    os.execv(gateway, argv)
    return 1  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point (``covet``) and ``python -m covet``."""
    args = _parser().parse_args(argv)
    commands = {"worker": _cmd_worker, "routes": _cmd_routes, "run": _cmd_run}
    try:
        return commands[args.command](args)
    except (AppLoadError, FileNotFoundError) as e:
        print(f"covet: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `covet routes app:app | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
