"""Fragment order checks and message assembly (PROTOCOL.md 2.4) over the records that
covet._shmring hands out. Pure bookkeeping: no shared memory here."""

from __future__ import annotations

from typing import Final

from covet._shmring import (
    BEGIN, CANCEL, CONTROL, END, ERROR, FLAG_CANCEL, FLAG_ERR, REQ_BODY, REQ_HEAD, RESP_BODY,
    RESP_HEAD, RingCorrupt,
)

__all__ = ["MAX_ASSEMBLED", "Reassembler"]

#: Assembled head / ERROR / CONTROL limit (PROTOCOL.md 2.4, 4).
MAX_ASSEMBLED: Final = 1 << 20

WHOLE_TYPES: Final = frozenset({REQ_HEAD, RESP_HEAD, ERROR, CONTROL})
STREAM_TYPES: Final = frozenset({REQ_BODY, RESP_BODY})


class Reassembler:
    """Checks fragment order per (id, type) and assembles whole messages.

    ``feed`` returns, for heads, ERROR and CONTROL: None until the END fragment, then
    the assembled payload (at most ``limit`` bytes); for bodies: each fragment's
    payload as it comes (a stream ends with END or with an ERR-flagged fragment); for
    anything else (CANCEL, reserved types): the payload unchanged. A CANCEL frame
    forgets every open message of its id. Violations raise RingCorrupt (offset -1).
    """

    __slots__ = ("_open", "limit")

    def __init__(self, limit: int = MAX_ASSEMBLED) -> None:
        self.limit = limit
        # (id, type) -> the bytes so far (whole messages) or None (open body streams)
        self._open: dict[tuple[int, int], bytearray | None] = {}

    def __len__(self) -> int:
        """Messages begun and not yet ended."""
        return len(self._open)

    def feed(self, typ: int, rid: int, flags: int, payload: bytes) -> bytes | None:
        if typ in STREAM_TYPES:
            return self._stream(typ, rid, flags, payload)
        if typ in WHOLE_TYPES:
            return self._whole(typ, rid, flags, payload)
        if typ == CANCEL:
            if not flags & FLAG_CANCEL:
                raise RingCorrupt(f"CANCEL frame for id {rid:#x} lacks the CANCEL flag", -1)
            self.forget(rid)
        return payload

    def forget(self, rid: int) -> None:
        """Drop every open message of ``rid``."""
        for key in [k for k in self._open if k[0] == rid]:
            del self._open[key]

    def _stream(self, typ: int, rid: int, flags: int, payload: bytes) -> bytes:
        key = (rid, typ)
        is_open = key in self._open
        if flags & BEGIN:
            if is_open:
                raise RingCorrupt(f"BEGIN inside an open type-{typ} stream of id {rid:#x}", -1)
            if not flags & (END | FLAG_ERR):
                self._open[key] = None
        elif not is_open:
            raise RingCorrupt(f"type-{typ} fragment of id {rid:#x} continues a stream never "
                              f"begun", -1)
        elif flags & (END | FLAG_ERR):
            del self._open[key]
        return payload

    def _whole(self, typ: int, rid: int, flags: int, payload: bytes) -> bytes | None:
        if typ == ERROR and not flags & FLAG_ERR:
            raise RingCorrupt(f"ERROR frame for id {rid:#x} lacks the ERR flag", -1)
        key = (rid, typ)
        parts = self._open.get(key)
        if flags & BEGIN:
            if key in self._open:
                raise RingCorrupt(f"BEGIN inside an open type-{typ} message of id {rid:#x}",
                                  -1)
            if len(payload) > self.limit:
                raise RingCorrupt(f"type-{typ} message of id {rid:#x} exceeds {self.limit} "
                                  f"bytes", -1)
            if flags & END:
                return payload
            self._open[key] = bytearray(payload)
            return None
        if parts is None:
            raise RingCorrupt(f"type-{typ} fragment of id {rid:#x} continues a message "
                              f"never begun", -1)
        if len(parts) + len(payload) > self.limit:
            del self._open[key]
            raise RingCorrupt(f"type-{typ} message of id {rid:#x} exceeds {self.limit} bytes",
                              -1)
        parts += payload
        if flags & END:
            del self._open[key]
            return bytes(parts)
        return None
