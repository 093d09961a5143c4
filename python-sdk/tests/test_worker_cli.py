"""``python -m covet``: app loading, ``routes``, and the gateway command ``run`` execs."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from covet import _cli

TESTS_DIR = Path(__file__).resolve().parent
TIMEOUT = 20.0


def covet(*args: str, cwd: Path = TESTS_DIR, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COVET_")}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "covet", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=TIMEOUT)


def test_routes_prints_the_table() -> None:
    r = covet("routes", "worker_app:app")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["METHOD", "PATH", "NAME", "TIMEOUT", "SECURITY"]
    rows = [line.split() for line in lines[1:]]
    assert ["GET", "/json", "json", "2.5s", "-"] in rows
    assert ["GET", "/item/{id:int}", "-", "-", "-"] in rows
    assert ["POST", "/echo", "-", "-", "-"] in rows


def test_routes_shows_the_security_options(tmp_path: Path) -> None:
    (tmp_path / "sec_app.py").write_text(
        "from covet import Covet\n"
        "app = Covet(openapi_url=None, security_headers={'x-frame-options': 'DENY'})\n"
        "@app.get('/admin', auth=True, roles=['admin', 'ops'], rate_limit='5/minute', rate_limit_key='subject',"
        " cors=False, compress=False)\n"
        "def admin(req): return 'x'\n"
    )
    r = covet("routes", "sec_app:app", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].split() == [
        "GET", "/admin", "-", "-", "auth,roles=admin|ops,rate=5/minute,key=subject,cors=off,headers=set,compress=off"]


def test_routes_shows_an_http_and_websocket_pair_as_one_route(tmp_path: Path) -> None:
    (tmp_path / "pair_app.py").write_text(
        "from covet import Covet\n"
        "app = Covet(openapi_url=None)\n"
        "@app.get('/live', timeout=1.5)\n"
        "def page(req): return 'x'\n"
        "@app.websocket('/live', name='live')\n"
        "async def live(ws): pass\n"
    )
    r = covet("routes", "pair_app:app", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [line.split() for line in r.stdout.splitlines()[1:]] == [["GET+WS", "/live", "live", "1.5s", "-"]]


def test_routes_from_another_directory_via_pythonpath(tmp_path: Path) -> None:
    r = covet("routes", "worker_app:app", cwd=tmp_path, env={"PYTHONPATH": str(TESTS_DIR)})
    assert r.returncode == 0 and "/stream/{n:int}" in r.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:app", "could not import module 'no_such_module_xyz'"),
        ("worker_app:missing", "attribute 'missing' not found in module 'worker_app'"),
        ("worker_app:not_an_app", "a object is not an app: want a Covet app, an ASGI 3 callable or a WSGI callable"),
        ("worker_app", 'must be given as "module:attribute"'),
    ],
)
def test_bad_app_spec_is_a_clear_error(spec: str, message: str) -> None:
    r = covet("routes", spec)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_import_error_inside_the_app_keeps_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("import no_such_dependency_xyz\n")
    r = covet("routes", "broken_app:app", cwd=tmp_path)
    assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr and "no_such_dependency_xyz" in r.stderr


def fake_gateway(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "argv.json"
    gw = tmp_path / "fake-gateway"
    gw.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                  f"json.dump({{'argv': sys.argv, 'cwd': os.getcwd(), 'log_level': os.environ.get('COVET_LOG_LEVEL'),"
                  f" 'jwks': os.environ.get('COVET_AUTH_JWKS_FILE')}},"
                  f" open({str(out)!r}, 'w'))\n")
    gw.chmod(0o755)
    return gw, out


def test_run_execs_the_gateway_with_the_agreed_flags(tmp_path: Path) -> None:
    gw, out = fake_gateway(tmp_path)
    r = covet("run", "worker_app:app", "--workers", "3", "--host", "0.0.0.0", "--port", "8123",
              "--gateway", str(gw))
    assert r.returncode == 0, r.stderr
    # The banner is the gateway's to print once it has bound (--banner), not covet's.
    assert r.stdout == ""
    got = json.loads(out.read_text())
    argv = got["argv"]
    assert argv[1:9] == ["--listen", "0.0.0.0:8123", "--app", "worker-test", "--workers", "3",
                         "--worker-cmd", f"{shlex.quote(sys.executable)} -m covet worker worker_app:app"]
    assert argv[9:] == ["--worker-dir", str(TESTS_DIR),
                        "--banner", "CovetPy serving worker_app:app on http://{addr} (3 workers)"]
    assert shlex.split(argv[8]) == [sys.executable, "-m", "covet", "worker", "worker_app:app"]


def test_run_passes_gateway_settings_by_config_environment_and_flags(tmp_path: Path) -> None:
    # The security settings (auth_jwks_file, rate_limit_default, ...) reach the gateway
    # as any of its settings does: --config, a COVET_<KEY> variable it inherits, or a
    # flag after --.
    gw, out = fake_gateway(tmp_path)
    r = covet("run", "worker_app:app", "--gateway", str(gw), "--config", "gw.yaml", "--",
              "--rate-limit-default", "100/second", env={"COVET_AUTH_JWKS_FILE": "/etc/jwks.json"})
    assert r.returncode == 0, r.stderr
    got = json.loads(out.read_text())
    assert got["jwks"] == "/etc/jwks.json"
    argv = got["argv"]
    assert argv[argv.index("--config") + 1] == "gw.yaml"
    assert argv[-2:] == ["--rate-limit-default", "100/second"]


def test_run_finds_the_gateway_through_the_environment(tmp_path: Path) -> None:
    gw, out = fake_gateway(tmp_path)
    r = covet("run", "worker_app:app", "--workers", "1", "--port", "9000", env={"COVET_GATEWAY": str(gw)})
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["argv"][1:3] == ["--listen", "127.0.0.1:9000"]


def test_run_without_a_gateway_says_where_it_looked(tmp_path: Path) -> None:
    r = covet("run", "worker_app:app", "--gateway", str(tmp_path / "nope"))
    assert r.returncode == 2 and "is not an executable file" in r.stderr


def test_find_gateway_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gw, _ = fake_gateway(tmp_path)
    assert _cli.find_gateway(str(gw), {}) == str(gw)
    assert _cli.find_gateway(None, {"COVET_GATEWAY": str(gw)}) == str(gw)
    checkout = Path(_cli.__file__).resolve().parent.parent.parent / "bin" / "covet-gateway"
    monkeypatch.setenv("PATH", str(tmp_path))
    if checkout.is_file():
        assert _cli.find_gateway(None, {}) == str(checkout)
    else:
        (tmp_path / "covet-gateway").symlink_to(gw)
        assert _cli.find_gateway(None, {}) == str(tmp_path / "covet-gateway")


def test_ipv6_listen_address_is_bracketed() -> None:
    argv = _cli.gateway_argv("/gw", "m:app", "name", 2, "::1", 80)
    assert argv[1:3] == ["--listen", "[::1]:80"]


def test_run_passes_the_common_gateway_settings_and_everything_after_the_dashes(tmp_path: Path) -> None:
    gw, out = fake_gateway(tmp_path)
    r = covet("run", "worker_app:app", "--workers", "1", "--gateway", str(gw),
              "--admin-listen", "127.0.0.1:9100", "--access-log", "--log-level", "DEBUG", "--config", "covet.yaml",
              "--engine", "netpoll", "--", "--max-rss", "512M", "--workers", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = json.loads(out.read_text())
    argv = got["argv"]
    banner = argv.index("--banner")
    assert argv[banner:banner + 2] == ["--banner", "CovetPy serving worker_app:app on http://{addr} (1 worker)"]
    assert argv[banner + 2:] == ["--admin-listen", "127.0.0.1:9100", "--access-log", "--log-level", "debug",
                                 "--config", "covet.yaml", "--engine", "netpoll", "--max-rss", "512M", "--workers", "2"]
    assert got["log_level"] == "debug"  # the workers inherit it


def test_run_passes_no_gateway_setting_that_was_not_given(tmp_path: Path) -> None:
    gw, out = fake_gateway(tmp_path)
    r = covet("run", "worker_app:app", "--workers", "2", "--gateway", str(gw))
    assert r.returncode == 0, r.stderr
    got = json.loads(out.read_text())
    assert not {"--admin-listen", "--access-log", "--log-level", "--config", "--engine"} & set(got["argv"])
    assert got["log_level"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "abc"], "argument --workers: 'abc' is not an integer"),
        (["--workers", "0"], "argument --workers: 0 is not a positive integer"),
        (["--port", "http"], "argument --port: 'http' is not an integer"),
        (["--port", "70000"], "argument --port: 70000 is not a port number"),
        (["--log-level", "loud"], "argument --log-level: invalid choice: 'loud'"),
    ],
)
def test_run_refuses_bad_values_by_name(args: list[str], message: str) -> None:
    r = covet("run", "worker_app:app", "--gateway", "/nonexistent", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_dashes_belong_to_run_only() -> None:
    r = covet("routes", "worker_app:app", "--", "--max-rss", "1G")
    assert r.returncode == 2 and "arguments after -- are gateway flags, for covet run only" in r.stderr


def test_version_is_the_installed_sdk_version() -> None:
    r = covet("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"covet {importlib.metadata.version('covet')}\n"
    assert _cli.sdk_version() == importlib.metadata.version("covet")


def test_run_passes_tls_pairs_in_order_and_the_banner_says_https(tmp_path: Path) -> None:
    gw, out = fake_gateway(tmp_path)
    r = covet("run", "worker_app:app", "--workers", "1", "--gateway", str(gw),
              "--tls-cert", "a.crt", "--tls-key", "a.key", "--tls-key", "b.key", "--tls-cert", "b.crt",
              "--http3", "--h2c")  # fmt: skip
    assert r.returncode == 0, r.stderr
    argv = json.loads(out.read_text())["argv"]
    banner = argv.index("--banner")
    assert argv[banner:] == ["--banner", "CovetPy serving worker_app:app on https://{addr} (1 worker)",
                             "--http3", "--h2c",
                             "--tls-cert", "a.crt", "--tls-key", "a.key", "--tls-cert", "b.crt", "--tls-key", "b.key"]


def test_run_h2c_alone_stays_http(tmp_path: Path) -> None:
    gw, out = fake_gateway(tmp_path)
    r = covet("run", "worker_app:app", "--workers", "1", "--gateway", str(gw), "--h2c")
    assert r.returncode == 0, r.stderr
    argv = json.loads(out.read_text())["argv"]
    assert "CovetPy serving worker_app:app on http://{addr} (1 worker)" in argv
    assert "--h2c" in argv and "--http3" not in argv and "--tls-cert" not in argv


GRPC_APP = """
import grpc
from covet import Covet

app = Covet("grpcapp")
app.grpc.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "t.Echo", {"Say": grpc.unary_unary_rpc_method_handler(lambda request, context: request)}),))
"""


def test_run_turns_h2c_on_for_an_app_with_grpc_services(tmp_path: Path) -> None:
    # gRPC clients reach a plaintext target over h2c; with TLS, h2 comes from ALPN.
    (tmp_path / "grpc_cli_app.py").write_text(GRPC_APP)
    gw, out = fake_gateway(tmp_path)
    r = covet("run", "grpc_cli_app:app", "--workers", "1", "--gateway", str(gw), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "the app serves gRPC: h2c on" in r.stderr
    assert json.loads(out.read_text())["argv"].count("--h2c") == 1
    r = covet("run", "grpc_cli_app:app", "--workers", "1", "--gateway", str(gw), "--tls-cert", "a.crt",
              "--tls-key", "a.key", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "--h2c" not in json.loads(out.read_text())["argv"] and "h2c on" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "a.crt"], "--tls-cert and --tls-key must pair up (each certificate with its key, in the same "
                                  "order): got 1 --tls-cert and 0 --tls-key"),
        (["--tls-cert", "a.crt", "--tls-key", "a.key", "--tls-key", "b.key"], "got 1 --tls-cert and 2 --tls-key"),
        (["--http3"], "--http3 needs TLS: give --tls-cert and --tls-key"),
    ],
)
def test_run_refuses_tls_flags_that_do_not_go_together(tmp_path: Path, args: list[str], message: str) -> None:
    gw, out = fake_gateway(tmp_path)
    r = covet("run", "worker_app:app", "--gateway", str(gw), *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not out.exists()  # the gateway never ran


def test_run_passes_static_mounts_with_absolute_dirs(tmp_path: Path) -> None:
    gw, out = fake_gateway(tmp_path)
    (tmp_path / "public").mkdir()
    r = covet("run", "worker_app:app", "--workers", "1", "--gateway", str(gw),
              "--static", f"/assets={tmp_path / 'public'}", "--static", f"/b={tmp_path}", "--static-index")  # fmt: skip
    assert r.returncode == 0, r.stderr
    argv = json.loads(out.read_text())["argv"]
    i = argv.index("--static")
    assert argv[i:i + 5] == ["--static", f"/assets={tmp_path / 'public'}", "--static", f"/b={tmp_path}", "--static-index"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [("assets=.", "want PREFIX=DIR"), ("/assets", "want PREFIX=DIR"), ("/a=/no/such/dir", "/no/such/dir is not a directory")],
)
def test_run_refuses_bad_static_mounts(tmp_path: Path, entry: str, message: str) -> None:
    gw, _ = fake_gateway(tmp_path)
    r = covet("run", "worker_app:app", "--gateway", str(gw), "--static", entry)
    assert r.returncode == 2 and message in r.stderr, r.stderr
