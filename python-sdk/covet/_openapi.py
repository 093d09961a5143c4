"""The OpenAPI 3.1 document of an app, generated from its routes, and the pages that
serve it: ``/openapi.json`` and the interactive ``/docs`` (assets shipped in the
package: no CDN, works offline)."""

from __future__ import annotations

from typing import Any

__all__ = ["install_docs", "openapi_document"]


def install_docs(app: Any) -> None:
    """Register the app's ``openapi_url`` and ``docs_url`` routes (None: not served)."""


def openapi_document(app: Any) -> dict[str, Any]:
    """The app's OpenAPI 3.1 document."""
    raise NotImplementedError
