"""The eventfd doorbells of the data plane (PROTOCOL.md 2.5).

Each side waits on one doorbell; the other side writes it only when it sees the
waiter's ``sleeping`` or ``producer_waiting`` flag, so under load no system call is
made. ``Doorbell`` is the blocking form; ``AsyncDoorbell`` plugs one into an asyncio
loop and wakes every coroutine waiting on it.
"""

from __future__ import annotations

import asyncio
import os
import select

__all__ = ["AsyncDoorbell", "Doorbell"]


class Doorbell:
    """One eventfd doorbell, made nonblocking. Owns the fd only if ``owned``."""

    __slots__ = ("_owned", "_poller", "fd")

    def __init__(self, fd: int, *, owned: bool = True) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._owned = owned
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)

    def ring(self) -> None:
        """Add 1 to the peer's counter (one write system call)."""
        os.eventfd_write(self.fd, 1)

    def drain(self) -> int:
        """Reset the counter; return how much it held (0 if nothing was pending)."""
        try:
            return os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0

    def wait(self, timeout: float | None) -> bool:
        """Block until rung or ``timeout`` seconds pass (None: forever); drain.
        True if it was rung. Threads waiting on one doorbell steal each other's
        wakeups (bounded by their timeouts); asyncio code uses AsyncDoorbell."""
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        if not self._poller.poll(ms):
            return False
        return self.drain() > 0

    def close(self) -> None:
        """Close the fd if owned."""
        if self._owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


class AsyncDoorbell:
    """Asyncio view of a Doorbell: one ``add_reader`` that drains the eventfd and wakes
    every current waiter, so a consumer and a blocked producer can share it."""

    __slots__ = ("_bell", "_loop", "_waiters")

    def __init__(self, bell: Doorbell, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._bell = bell
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._waiters: list[asyncio.Future[None]] = []
        self._loop.add_reader(bell.fd, self._on_ready)

    def _on_ready(self) -> None:
        self._bell.drain()
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self, timeout: float | None) -> bool:
        """Wait until rung or ``timeout`` seconds pass; True if rung."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)
        return True

    def close(self) -> None:
        """Unregister the reader (the Doorbell itself stays open)."""
        self._loop.remove_reader(self._bell.fd)
        for fut in self._waiters:
            fut.cancel()
        self._waiters.clear()
