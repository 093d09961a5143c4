"""The ``covet`` command line.

::

    covet --version                              the SDK's version
    covet worker MODULE:ATTR [--app-name NAME]   serve as one worker of a gateway
    covet routes MODULE:ATTR                     print the route table (with each route's
                                                 security options)
    covet run MODULE:ATTR [--workers N] [--host H] [--port P] [--app-name NAME]
              [--gateway PATH] [--reload] [--admin-listen ADDR] [--access-log]
              [--log-level LEVEL] [--config FILE] [--engine auto|uring|netpoll]
              [--tls-cert FILE --tls-key FILE]... [--http3] [--h2c]
              [-- GATEWAY FLAGS...]
                                                 exec the gateway, which spawns workers
                                                 (--reload: run it as a child and SIGHUP it
                                                 when a *.py file changes: new workers)

``covet run`` passes what follows ``--`` to the gateway unchanged, after its own flags
(so a repeated flag there wins); ``covet-gateway -h`` lists them. The gateway prints the
banner once its listener is bound (its ``--banner`` setting); it says ``https://`` when
``--tls-cert`` is given.

``--tls-cert``/``--tls-key`` serve HTTPS (HTTP/1.1, and HTTP/2 to clients that offer it):
PEM files, repeatable, the Nth key belonging to the Nth certificate (several are chosen by
SNI, the first the default). ``--http3`` also serves HTTP/3 on UDP at the same port and
needs them; ``--h2c`` serves HTTP/2 with prior knowledge on cleartext connections.

``MODULE:ATTR`` is imported the way uvicorn does it: the current directory goes first
on ``sys.path``, ``MODULE`` is imported, and ``ATTR`` (dots allowed) looked up in it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from ._app import Covet
from ._hosting import INTERFACES, detect_interface, host, hosted_name
from ._wsgi import DEFAULT_THREADS as DEFAULT_WSGI_THREADS
from ._wsgi import ENV_THREADS as ENV_WSGI_THREADS

__all__ = ["AppLoadError", "find_gateway", "gateway_argv", "load_app", "main", "sdk_version"]

ENV_GATEWAY: Final = "COVET_GATEWAY"
ENV_LOG_LEVEL: Final = "COVET_LOG_LEVEL"
GATEWAY_NAME: Final = "covet-gateway"


class AppLoadError(Exception):
    """``MODULE:ATTR`` does not name a Covet app."""


def load_object(spec: str) -> Any:
    """Import ``MODULE:ATTR`` (current directory first on sys.path) and return the
    object it names."""
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
    return obj


def load_app(spec: str, interface: str = "auto", name: str | None = None, wsgi_threads: int | None = None) -> Covet:
    """The app ``spec`` (``MODULE:ATTR``) names, as a Covet app: a Covet app as it is, an
    ASGI or WSGI application hosted (covet/_hosting.py) under ``name`` (default: the
    module's name). ``interface`` is ``auto`` (detect), ``covet``, ``asgi`` or
    ``wsgi``; an object that is not what it says raises AppLoadError."""
    obj = load_object(spec)
    try:
        return host(obj, interface, name or hosted_name(spec), wsgi_threads=wsgi_threads)
    except ValueError as e:
        raise AppLoadError(f"{spec!r}: {e}") from None


def describe_interface(spec: str) -> str:
    """What ``--interface auto`` makes of ``spec``, for covet run to say."""
    try:
        interface, why = detect_interface(load_object(spec))
    except ValueError as e:
        raise AppLoadError(f"{spec!r}: {e}") from None
    return f"{interface} ({why})"


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


def sdk_version() -> str:
    """The installed SDK's version (python-sdk/pyproject.toml); ``unknown`` when the
    package runs from a source tree without being installed."""
    try:
        return importlib.metadata.version("covet")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def gateway_argv(gateway: str, spec: str, app_name: str, workers: int, host: str, port: int,
                 worker_app_name: str | None = None, extra: Sequence[str] = (), scheme: str = "http",
                 interface: str = "covet", wsgi_threads: int | None = None) -> list[str]:  # fmt: skip
    """The gateway's command line (flags agreed with gateway/): covet run's own
    settings, then ``extra`` (gateway flags passed through unchanged). ``scheme`` is
    the banner's: ``https`` when covet run passes TLS certificates. The workers are
    told the app's ``interface`` (and ``wsgi_threads``) when it is not a Covet app."""
    worker_cmd = f"{shlex.quote(sys.executable)} -m covet worker {shlex.quote(spec)}"
    if worker_app_name:
        worker_cmd += f" --app-name {shlex.quote(worker_app_name)}"
    if interface != "covet":
        worker_cmd += f" --interface {interface}"
    if wsgi_threads is not None:
        worker_cmd += f" --wsgi-threads {wsgi_threads}"
    plural = "" if workers == 1 else "s"
    return [
        gateway,
        "--listen", _host_port(host, port),
        "--app", app_name,
        "--workers", str(workers),
        "--worker-cmd", worker_cmd,
        "--worker-dir", os.getcwd(),
        "--banner", f"CovetPy serving {spec} on {scheme}://{{addr}} ({workers} worker{plural})",
        *extra,
    ]  # fmt: skip


def _setup_logging() -> None:
    level = os.environ.get(ENV_LOG_LEVEL, "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(name)s] pid=%(process)d %(message)s",
    )


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _positive(text: str) -> int:
    n = _integer(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return n


def _port(text: str) -> int:
    n = _integer(text)
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (0..65535; 0 = any free port)")
    return n


#: ``covet run``'s flags for common gateway settings: (flag, takes a value). Each is
#: passed on as the same gateway flag, only when given.
GATEWAY_FLAGS: Final = (("--admin-listen", True), ("--access-log", False), ("--log-level", True), ("--config", True),
                        ("--engine", True), ("--http3", False), ("--h2c", False))
LOG_LEVELS: Final = ("debug", "info", "warn", "warning", "error")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="covet", description="CovetPy: Python handlers behind a Go gateway")
    p.add_argument("--version", action="version", version=f"covet {sdk_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    w = sub.add_parser("worker", help="serve an app as one worker (started by the gateway)")
    w.add_argument("app", metavar="MODULE:ATTR")
    w.add_argument("--app-name", help="name sent to the gateway (default: the app's name)")

    r = sub.add_parser("routes", help="print the app's route table")
    r.add_argument("app", metavar="MODULE:ATTR")
    for sp in (w, r):
        _interface_flags(sp)

    run = sub.add_parser("run", help="start the gateway, which spawns the workers",
                         usage="%(prog)s MODULE:ATTR [options] [-- GATEWAY FLAGS...]",
                         epilog="Flags after -- go to the gateway unchanged, after covet run's own "
                                "(covet-gateway -h lists them), e.g. -- --max-rss 512M --timeout 10s.")
    run.add_argument("app", metavar="MODULE:ATTR")
    _interface_flags(run)
    run.add_argument("--workers", type=_positive, default=os.cpu_count() or 1,
                     help="worker processes (default: CPU count)")
    run.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    run.add_argument("--port", type=_port, default=8000, help="listen port (default 8000; 0 = any free port)")
    run.add_argument("--gateway", help=f"gateway binary (default: ${ENV_GATEWAY}, bin/{GATEWAY_NAME}, PATH)")
    run.add_argument("--app-name", help="app name for the gateway (default: the app's name)")
    run.add_argument("--reload", action="store_true",
                     help="development: restart the workers when a *.py file under the current directory changes")
    run.add_argument("--admin-listen", metavar="ADDR",
                     help="gateway: serve /metrics, /healthz and /readyz on this address (default: none)")
    run.add_argument("--access-log", action="store_true", help="gateway: log one line per request")
    run.add_argument("--log-level", choices=LOG_LEVELS, type=str.lower,
                     help=f"gateway and workers: log level (default info; also ${ENV_LOG_LEVEL})")
    run.add_argument("--config", metavar="FILE",
                     help="gateway: YAML configuration file; covet run's own flags win over it")
    run.add_argument("--engine", choices=("auto", "uring", "netpoll"),
                     help="gateway: socket engine (default netpoll; uring: io_uring; auto: io_uring where "
                          "the kernel allows it, else netpoll)")
    run.add_argument("--tls-cert", metavar="FILE", action="append", default=[],
                     help="gateway: serve HTTPS with this PEM certificate chain (repeatable: several are "
                          "chosen by SNI, the first the default; each needs its --tls-key, in the same order)")
    run.add_argument("--tls-key", metavar="FILE", action="append", default=[],
                     help="gateway: the PEM private key of the --tls-cert at the same position")
    run.add_argument("--http3", action="store_true",
                     help="gateway: also serve HTTP/3 (QUIC) on UDP at the same port (needs --tls-cert)")
    run.add_argument("--h2c", action="store_true",
                     help="gateway: serve HTTP/2 with prior knowledge on cleartext connections")
    run.add_argument("--static", metavar="PREFIX=DIR", action="append", default=[],
                     help="gateway: serve the files under DIR at PREFIX from disk, e.g. /assets=./public "
                          "(repeatable; no worker sees these requests)")
    run.add_argument("--static-index", action="store_true",
                     help="gateway: answer a request for a directory of a --static mount with its index.html")
    return p


def _interface_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interface", choices=INTERFACES, default="auto",
                   help="what the app is: a Covet app, an ASGI 3 or a WSGI application (default: auto, "
                        "detected from the object)")
    p.add_argument("--wsgi-threads", type=_positive, default=None,
                   help=f"the pool running a WSGI app's requests that would wait for its handler thread, "
                        f"per worker (default: ${ENV_WSGI_THREADS}, else {DEFAULT_WSGI_THREADS})")


def _check_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """How covet run's TLS flags go together; an argparse error (exit 2) if not."""
    if len(args.tls_cert) != len(args.tls_key):
        parser.error(f"--tls-cert and --tls-key must pair up (each certificate with its key, in the same order): "
                     f"got {len(args.tls_cert)} --tls-cert and {len(args.tls_key)} --tls-key")
    for entry in args.static:
        prefix, sep, directory = entry.partition("=")
        if not sep or not prefix.startswith("/") or not directory:
            parser.error(f"--static {entry}: want PREFIX=DIR, e.g. /assets=./public")
        if not os.path.isdir(directory):
            parser.error(f"--static {entry}: {directory} is not a directory")
    if args.http3 and not args.tls_cert:
        parser.error("--http3 needs TLS: give --tls-cert and --tls-key (where TLS comes from --config "
                     "or the flags after --, pass -- --http3 instead)")


def _cmd_worker(args: argparse.Namespace) -> int:
    from ._worker import run_worker

    app = load_app(args.app, args.interface, args.app_name, args.wsgi_threads)
    _setup_logging()  # after the import: an app that configures logging itself wins
    return run_worker(app, app_name=args.app_name or app.name)


def _cmd_routes(args: argparse.Namespace) -> int:
    app = load_app(args.app, args.interface, None, args.wsgi_threads)
    rows = []
    for entry in app.manifest():  # as the gateway gets them: a GET and a WebSocket route on one path are one
        options = entry["options"]
        timeout = "-" if options.get("timeout_ms") is None else f"{options['timeout_ms'] / 1000:g}s"
        method = entry["method"]
        if entry["kind"] != "http":  # WS (GET+WS: a GET handler beside it), STATIC
            method = ("GET+WS" if options.get("http") else "WS") if entry["kind"] == "ws" else entry["kind"].upper()
        rows.append((method, entry["path"], options.get("name") or "-", timeout, _security_cell(options)))
    header = ("METHOD", "PATH", "NAME", "TIMEOUT", "SECURITY")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0


def _security_cell(options: dict[str, Any]) -> str:
    """A route's security options as ``covet routes`` shows them, e.g.
    ``auth,roles=admin|ops,rate=5/minute,key=subject,cors=off``; ``-`` for none."""
    parts: list[str] = []
    if options.get("auth"):
        parts.append("auth")
    for key in ("roles", "scopes"):
        if options.get(key):
            parts.append(f"{key}={'|'.join(options[key])}")
    for key, label in (("rate_limit", "rate"), ("rate_limit_key", "key")):
        if key in options:
            parts.append(f"{label}={options[key]}")
    for key, label in (("cors", "cors"), ("security_headers", "headers")):
        if key in options:
            parts.append(f"{label}={'off' if options[key] is False else 'set'}")
    if "compress" in options:
        parts.append(f"compress={'on' if options['compress'] else 'off'}")
    return ",".join(parts) or "-"


def _cmd_run(args: argparse.Namespace) -> int:
    app = load_app(args.app, args.interface, args.app_name, args.wsgi_threads)
    interface = args.interface
    if interface == "auto":
        said = describe_interface(args.app)
        print(f"covet: serving {args.app} as {said}", file=sys.stderr)
        interface = said.split(" ", 1)[0]
    gateway = find_gateway(args.gateway)
    name = args.app_name or app.name
    extra: list[str] = []
    for flag, takes_value in GATEWAY_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value:
            extra += [flag, value] if takes_value else [flag]
    for cert, key in zip(args.tls_cert, args.tls_key, strict=True):
        extra += ["--tls-cert", cert, "--tls-key", key]
    for entry in args.static:
        prefix, _, directory = entry.partition("=")
        extra += ["--static", f"{prefix}={os.path.abspath(directory)}"]
    if args.static_index:
        extra.append("--static-index")
    if not args.tls_cert and not args.h2c and any(r["kind"] == "grpc" for r in app.manifest()):
        # gRPC clients speak HTTP/2 with prior knowledge to a plaintext target.
        extra.append("--h2c")
        print("covet: the app serves gRPC: h2c on (HTTP/2 with prior knowledge, beside HTTP/1.1)", file=sys.stderr)
    if args.log_level:  # the workers read it from the environment they inherit
        os.environ[ENV_LOG_LEVEL] = args.log_level
    argv = gateway_argv(gateway, args.app, name, args.workers, args.host, args.port, args.app_name,
                        [*extra, *args.gateway_args], "https" if args.tls_cert else "http",
                        interface, args.wsgi_threads)  # fmt: skip
    sys.stdout.flush()
    sys.stderr.flush()
    if args.reload:
        from ._reload import run_with_reload

        return run_with_reload(argv, [Path.cwd()])
    os.execv(gateway, argv)
    return 1  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point (``covet``) and ``python -m covet``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    passthrough: list[str] = []
    if "--" in argv:  # covet run's gateway flags; argparse would take them as arguments
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if passthrough and args.command != "run":
        parser.error(f"arguments after -- are gateway flags, for covet run only (got {shlex.join(passthrough)})")
    args.gateway_args = passthrough
    if args.command == "run":
        _check_run(parser, args)
    commands = {"worker": _cmd_worker, "routes": _cmd_routes, "run": _cmd_run}
    try:
        return commands[args.command](args)
    except (AppLoadError, FileNotFoundError) as e:
        print(f"covet: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `covet routes app:app | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
