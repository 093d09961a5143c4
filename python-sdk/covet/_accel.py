"""Whether the compiled core (``covet._speedups``, from ``_speedups.c``) is in use.

pip builds it with the SDK where a C compiler is at hand; without one, with a module
built from another version of its source, or with ``COVET_NO_EXTENSIONS=1`` in the
environment, the pure-Python modules run instead:
they are the reference the compiled core is tested against, and the fallback. Which
one a worker runs is in its "serving" log line.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Final

__all__ = ["ENV_NO_EXTENSIONS", "speedups"]

#: The API_VERSION of _speedups.c this SDK works with.
API_VERSION: Final = 1
#: Set (to anything but "" or "0") to run the pure-Python modules.
ENV_NO_EXTENSIONS: Final = "COVET_NO_EXTENSIONS"


def _load() -> ModuleType | None:
    if os.environ.get(ENV_NO_EXTENSIONS, "") not in ("", "0"):
        return None
    try:
        from covet import _speedups
    except ImportError:
        return None
    # One built from another version of _speedups.c (a checkout updated without a
    # rebuild) is not used.
    if getattr(_speedups, "API_VERSION", None) != API_VERSION:
        return None
    return _speedups


#: The compiled module, or None when the pure-Python modules run.
speedups: Final = _load()
