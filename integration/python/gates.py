"""A gate file for the streaming tests' apps (sdk_app.py, asgi_hosted_app.py): an app
waits for a file the test creates once it has read what came before, so that a test
proves order (the client had the first chunk before the app made the next) instead of
timing."""

from __future__ import annotations

import asyncio
import os

#: How long an app waits for its gate before going on without it.
GATE_WAIT_S = 10.0


async def opened(path: str, timeout: float = GATE_WAIT_S) -> bool:
    """Whether the file ``path`` came to exist within ``timeout`` seconds (polled)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not os.path.exists(path):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
