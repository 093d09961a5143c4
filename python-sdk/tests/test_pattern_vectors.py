"""The route-pattern golden vectors of workerproto/PROTOCOL.md 7, shared with the Go
router (router/vectors_test.go): pattern -> canonical form or error, and route tables
-> conflict, or requests -> route and params, 404, 405 or automatic OPTIONS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from covet._patterns import Pattern
from covet._routing import Route, Router

VECTORS_FILE = Path(__file__).resolve().parents[2] / "workerproto" / "testdata" / "patterns.json"
# Read at import: a missing or malformed file fails collection instead of skipping.
VECTORS: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
PATTERNS: list[dict[str, Any]] = VECTORS["patterns"]
TABLES: list[dict[str, Any]] = VECTORS["tables"]


def test_vector_file_is_populated() -> None:
    assert VECTORS["format"] == 1
    assert len(PATTERNS) > 0 and len(TABLES) > 0
    assert any("error" in p for p in PATTERNS) and any("canonical" in p for p in PATTERNS)
    assert any(r["status"] == 200 for t in TABLES for r in t.get("requests", []))


@pytest.mark.parametrize("vec", PATTERNS, ids=[repr(p["pattern"]) for p in PATTERNS])
def test_pattern(vec: dict[str, Any]) -> None:
    # PROTOCOL.md 7.5: "python" marks a pattern the gateway accepts and this SDK
    # refuses at registration; "python_canonical", one the gateway refuses and this
    # SDK rewrites into the grammar; "error", one that everyone refuses.
    if "python_canonical" in vec:
        assert "error" in vec
        assert Pattern.parse(vec["pattern"]).canonical == vec["python_canonical"]
        return
    if "error" in vec or "python" in vec:
        with pytest.raises(ValueError, match="invalid route pattern"):
            Pattern.parse(vec["pattern"])
        return
    p = Pattern.parse(vec["pattern"])
    assert p.canonical == vec["canonical"]
    assert Pattern.parse(p.canonical).canonical == p.canonical


def _route(method: str, pattern: str) -> Route:
    p = Pattern.parse(pattern)
    return Route(method, p, lambda req: None, None, None, True, p.kinds())


@pytest.mark.parametrize("table", TABLES, ids=[t["name"] for t in TABLES])
def test_route_table(table: dict[str, Any]) -> None:
    router = Router()
    routes = [_route(m, p) for m, p in table["routes"]]
    error = table.get("error")
    if error is not None:
        for r in routes[:-1]:
            router.add(r)
        match = "already registered" if error == "duplicate" else "already registered|conflicts with"
        with pytest.raises(ValueError, match=match):
            router.add(routes[-1])
        return
    for r in routes:
        router.add(r)
    assert table["requests"]
    for req in table["requests"]:
        where = f"{req['method']} {req['path']}"
        m = router.match(req["method"], req["path"])
        assert m.status == req["status"], where
        assert ", ".join(m.allow) == req.get("allow", ""), where
        if req["status"] != 200:
            assert m.route is None, where
            continue
        assert m.route is not None, where
        assert [m.route.method, m.route.pattern.source] == req["route"], where
        assert [list(kv) for kv in m.params] == req["params"], where
