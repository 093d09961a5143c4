"""The examples in docs/python-app.md run and say what is true: every ```python block
whose first line is ``# example: NAME`` is run on its own, as a script; its asserts
(on TestClient responses) are what the doc shows."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-app.md"
BLOCK_RE = re.compile(r"^```python\n# example: ([\w-]+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def examples() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, code in BLOCK_RE.findall(DOC.read_text("utf-8")):
        assert name not in found, f"two examples named {name!r} in {DOC}"
        found[name] = code
    return found


EXAMPLES = examples()


def test_the_typed_handler_examples_are_there() -> None:
    assert {"parameters", "bodies", "validation-handler", "returns", "dependencies", "middleware", "background",
            "openapi"} <= set(EXAMPLES)  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example(name: str) -> None:
    # Run as a module of its own (dataclasses and pydantic look their classes' modules
    # up in sys.modules), without this file's `from __future__ import annotations`.
    module = types.ModuleType(f"doc_example_{name.replace('-', '_')}")
    code = compile(EXAMPLES[name], f"{DOC}:example:{name}", "exec", dont_inherit=True)
    sys.modules[module.__name__] = module
    try:
        exec(code, module.__dict__)
    finally:
        del sys.modules[module.__name__]
