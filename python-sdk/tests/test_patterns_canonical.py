"""canonical_path agrees with the gateway's router.AppendCanonicalPath on the shared
cases in router/testdata/canonical_paths.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from covet._patterns import canonical_path

CASES_FILE = Path(__file__).resolve().parents[2] / "router" / "testdata" / "canonical_paths.json"
CASES: list[dict[str, Any]] = json.loads(CASES_FILE.read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["path"] for c in CASES])
def test_canonical_path_matches_the_gateway(case: dict[str, Any]) -> None:
    want = case["canonical"] if case["canonical"] is not None else case["path"]
    assert canonical_path(case["path"]) == want
