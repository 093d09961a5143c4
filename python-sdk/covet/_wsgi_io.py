"""The streams between a WSGI application's thread and the worker's event loop
(covet/_wsgi.py): ``wsgi.input`` (the request body, pulled from the loop as the app
reads), the response pipe (chunks handed to the loop, at most a few ahead of what the
gateway took), ``wsgi.errors`` (lines to the worker's log) and ``wsgi.file_wrapper``.

Ownership: an :class:`InputStream` and the producing side of a :class:`Pipe` belong to
the one pool thread running the request; the consuming side of a Pipe and the body
iterator an InputStream reads belong to the loop. They meet only through
``call_soon_threadsafe`` / ``run_coroutine_threadsafe``, a semaphore, and flags that
one side sets and the other reads.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import stat
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

__all__ = ["ClientDisconnected", "ErrorStream", "FileWrapper", "InputStream", "Pipe", "PipeClosed"]

wsgi_log = logging.getLogger("covet.wsgi")

class ClientDisconnected(OSError):
    """Raised by ``wsgi.input`` reads when the request ended before its body did (the
    client left, or the gateway aborted the body): the app's read fails as a socket
    read would."""


class PipeClosed(Exception):
    """The consumer of a response pipe is gone (the client left, the response was
    dropped): the producing thread stops iterating the app's body."""


# -- wsgi.input --------------------------------------------------------------------------


class InputStream:
    """``wsgi.input``: the request body, read by the app's thread as the gateway
    delivers it. Each read that needs more bytes waits for the body's next chunk from
    the event loop (one ``run_coroutine_threadsafe`` per chunk); nothing is read ahead
    of the app, so the gateway's flow control (REQ_WINDOW) paces the client by what
    the app has consumed. ``read(n)`` returns ``n`` bytes unless the body ends first;
    ``read()`` the rest. A body that breaks off raises :class:`ClientDisconnected`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, source: AsyncIterator[bytes] | None,
                 body: bytes = b"") -> None:  # fmt: skip
        """``source`` gives the body's chunks (None: no more than ``body``, the bytes
        already read)."""
        self._loop = loop
        self._source = source
        self._buf = bytearray(body)
        self._eof = source is None
        self._gone = False
        self._pending: concurrent.futures.Future[bytes | None] | None = None

    # -- loop side --

    def abandon(self) -> None:
        """The request is over (called on the loop): a read waiting for a chunk fails
        with ClientDisconnected, as does every later one that needs more bytes."""
        self._gone = True
        pending = self._pending
        if pending is not None:
            pending.cancel()

    # -- thread side --

    def _fill(self) -> bool:
        """Append the body's next chunk to the buffer; False at the end of the body."""
        if self._eof:
            return False
        if self._gone:
            raise ClientDisconnected("the request is over: its body can no longer be read")
        assert self._source is not None
        try:
            fut = asyncio.run_coroutine_threadsafe(_next_chunk(self._source), self._loop)
        except RuntimeError:  # the loop is closed: the worker is gone
            raise ClientDisconnected("the worker stopped while the body was being read") from None
        self._pending = fut
        if self._gone:
            fut.cancel()
        try:
            chunk = fut.result()
        except concurrent.futures.CancelledError:
            raise ClientDisconnected("the request ended before its body was read") from None
        except Exception as e:  # BodyAborted: the gateway broke the body off
            raise ClientDisconnected(f"the request body broke off: {e}") from e
        finally:
            self._pending = None
        if chunk is None:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def _take(self, n: int) -> bytes:
        buf = self._buf
        if n >= len(buf):
            data = bytes(buf)
            buf.clear()
            return data
        data = bytes(buf[:n])
        del buf[:n]
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes: exactly ``size`` unless the body ends first; all that
        is left when ``size`` is None or negative; b"" at the end."""
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self._buf))
        while len(self._buf) < size and self._fill():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        """One line, its ``\\n`` included (none on the body's last line), or at most
        ``size`` bytes of it."""
        limit = -1 if size is None or size < 0 else size
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end != -1:
                n = end + 1
                return self._take(n if limit < 0 else min(n, limit))
            if 0 <= limit <= len(self._buf):
                return self._take(limit)
            start = len(self._buf)
            if not self._fill():
                return self._take(len(self._buf) if limit < 0 else limit)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines; with a positive ``hint``, lines until their total size
        reaches it."""
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


async def _next_chunk(source: AsyncIterator[bytes]) -> bytes | None:
    """The body's next non-empty chunk, or None at its end (run on the loop)."""
    try:
        while True:
            chunk = await anext(source)
            if chunk:
                return chunk
    except StopAsyncIteration:
        return None


# -- the response pipe ---------------------------------------------------------------------


class Pipe:
    """Items from the app's thread to the event loop, at most ``slots`` ahead of the
    consumer: :meth:`put` blocks the thread while that many are waiting, which is the
    response's backpressure (the worker takes the next chunk only when the gateway has
    room for it). The consumer's going away (:meth:`abandon`) wakes a blocked
    :meth:`put`, which then raises :class:`PipeClosed`, as does every later one."""

    __slots__ = ("_items", "_loop", "_room", "_slots", "_waiter", "gone")

    def __init__(self, loop: asyncio.AbstractEventLoop, slots: int) -> None:
        self._loop = loop
        self._slots = slots
        self._room = threading.Semaphore(slots)
        self._items: collections.deque[Any] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        #: Set (on the loop) when nothing will take the pipe's items any more.
        self.gone = False

    # -- thread side --

    def put(self, item: Any) -> None:
        """Hand ``item`` to the loop, waiting for room first; PipeClosed when the
        consumer is gone."""
        self._room.acquire()
        self._hand(item, True)

    def put_last(self, item: Any) -> None:
        """Hand ``item`` to the loop without waiting for room: the pipe's last item
        (the end, or an error), or its first (the response). PipeClosed when the
        consumer is gone."""
        self._hand(item, False)

    def _hand(self, item: Any, counted: bool) -> None:
        if self.gone:
            raise PipeClosed
        try:
            self._loop.call_soon_threadsafe(self._arrive, item, counted)
        except RuntimeError:  # the loop is closed
            raise PipeClosed from None

    # -- loop side --

    def arrive(self, item: Any) -> None:
        """Hand ``item`` over from the loop itself (as put_last does from the thread)."""
        self._arrive(item, False)

    def _arrive(self, item: Any, counted: bool) -> None:
        if self.gone:
            return
        self._items.append((item, counted))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        """The next item, waiting for it; its slot is given back to the thread."""
        items = self._items
        while not items:
            waiter = self._loop.create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        item, counted = items.popleft()
        if counted:
            self._room.release()
        return item

    def abandon(self) -> None:
        """Nothing will take the items any more: a put blocked for room wakes and
        raises PipeClosed. Safe from any thread, and more than once."""
        if not self.gone:
            self.gone = True
            self._items.clear()
            self._room.release(self._slots + 1)


# -- wsgi.errors ---------------------------------------------------------------------------


class ErrorStream:
    """``wsgi.errors``: text written here goes to the worker's log (logger
    ``covet.wsgi``, level ERROR), a record per line, tagged with the request's id.
    A line without its newline is logged at ``flush()`` or when the request ends."""

    __slots__ = ("_partial", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._partial = ""

    def write(self, text: str) -> int:
        """Log the complete lines of ``text`` (what precedes a newline waits for the rest)."""
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, got {type(text).__name__}")
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """``write`` each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Log a pending partial line."""
        if self._partial:
            line, self._partial = self._partial, ""
            self._emit(line)

    def _emit(self, line: str) -> None:
        wsgi_log.error("%s", line.rstrip("\r"), extra={"request_id": self.request_id})


# -- wsgi.file_wrapper -----------------------------------------------------------------------


class FileWrapper:
    """``wsgi.file_wrapper`` (PEP 3333, "Optional Platform-Specific File Handling"):
    returned by the app for a file-like object. When it is still at the start of a
    regular file that has a path (``.name``) and nothing else was written, the
    gateway sends that file itself (a FileResponse: sendfile, ETag, ranges); otherwise
    it is iterated in blocks of ``blksize`` bytes. ``close()`` closes the file."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data  # type: ignore[no-any-return]
        raise StopIteration

    def close(self) -> None:
        """Close the file, if it has a ``close``."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def file_path(self) -> str | None:
        """The absolute path of the wrapped file when the gateway can send it for the
        app: a regular file named by ``.name``, the same file as the one open (not
        replaced or deleted since), read from its start, and not deleted when closed
        (a NamedTemporaryFile); else None."""
        f = self.filelike
        name = getattr(f, "name", None)
        if not isinstance(name, str) or not name or _deleted_on_close(f):
            return None
        try:
            if f.tell() != 0:
                return None
            opened = os.fstat(f.fileno())
            named = os.stat(name)
        except (AttributeError, OSError, ValueError):
            return None
        same = (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)
        return os.path.abspath(name) if same and stat.S_ISREG(named.st_mode) else None


def _deleted_on_close(f: Any) -> bool:
    """Whether closing ``f`` deletes its file, as a tempfile.NamedTemporaryFile's does
    (its ``delete`` up to Python 3.11, its closer's since): the app's close() would
    then race the gateway's open."""
    closer = getattr(f, "_closer", None)
    return bool(getattr(f, "delete", False) or getattr(closer, "delete", False))
