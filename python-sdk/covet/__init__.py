"""CovetPy: Python handlers served by a Go gateway through shared-memory rings."""

__all__: list[str] = []
