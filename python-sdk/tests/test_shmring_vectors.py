"""Golden ring-record vectors shared with Go (workerproto/testdata/records/).

``records.json`` lists every vector: the ``.hex`` file holding the record's bytes and
the fields it encodes (``type``, ``id``, ``flags``, ``payload``, ``capacity``,
``index``, ``length``, ``padded_size``; README.md in that folder). Each vector is
checked both ways against those fields, never against this reader's own output:

- decode: the file's bytes, placed in a ring at ``index``, must come out of
  ``RingReader`` as exactly the listed frame (none for a ``PAD``), with the head moved
  past the record;
- encode: ``RingWriter`` writing the listed frame into an empty ring at ``index``
  must produce exactly the file's bytes (for ``PAD``: a frame too big for the space
  before the wrap must leave this ``PAD`` there).

A missing folder, a missing ``records.json`` or a ``.hex`` file without an entry
fails; nothing here is skipped.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from covet import _shmring as sr

try:  # tests/ may or may not be a package
    from .shmring_gateway import (  # type: ignore[import-not-found,unused-ignore]
        make_bell, make_memfd)
except ImportError:
    from shmring_gateway import (  # type: ignore[no-redef,unused-ignore]
        make_bell, make_memfd)

RECORDS_DIR = Path(__file__).resolve().parents[2] / "workerproto" / "testdata" / "records"
RECORDS_JSON = RECORDS_DIR / "records.json"
ALL_TYPES = frozenset({sr.REQ_HEAD, sr.REQ_BODY, sr.RESP_HEAD, sr.RESP_BODY, sr.RESP, sr.CANCEL,
                       sr.ERROR, sr.WINDOW, sr.CONTROL, *range(80, 112)})
FIELDS = ("file", "capacity", "index", "type", "id", "flags", "payload", "length", "padded_size")


def load_entries() -> list[dict[str, Any]]:
    """The entries of records.json; [] when it is missing (test_vector_set fails then)."""
    if not RECORDS_JSON.is_file():
        return []
    entries: list[dict[str, Any]] = json.loads(RECORDS_JSON.read_text())["records"]
    return entries


ENTRIES = load_entries()


def parse_hex(path: Path) -> bytes:
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    return bytes.fromhex("".join("".join(lines).split()))


def test_vector_set() -> None:
    assert RECORDS_DIR.is_dir(), f"{RECORDS_DIR} is missing"
    assert RECORDS_JSON.is_file(), f"{RECORDS_JSON} is missing"
    assert ENTRIES, f"{RECORDS_JSON} lists no records"
    listed = {e["file"] for e in ENTRIES}
    on_disk = {p.name for p in RECORDS_DIR.glob("*.hex")}
    assert listed == on_disk, f"listed but missing: {listed - on_disk}; unlisted: {on_disk - listed}"
    # Every frame type a ring carries has a vector.
    assert {e["type"] for e in ENTRIES} >= {sr.PAD, sr.REQ_HEAD, sr.REQ_BODY, sr.RESP_HEAD, sr.RESP_BODY,
                                            sr.RESP, sr.CANCEL, sr.ERROR, sr.WINDOW, sr.CONTROL}


def segment(cap: int) -> tuple[sr.Segment, sr.Doorbell, sr.Doorbell]:
    seg = sr.Segment.open(make_memfd(cap, 4096))
    return seg, sr.Doorbell(make_bell()), sr.Doorbell(make_bell())


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_vector(entry: dict[str, Any]) -> None:
    assert set(FIELDS) <= set(entry), f"missing keys {set(FIELDS) - set(entry)}"
    raw = parse_hex(RECORDS_DIR / entry["file"])
    cap, index, typ, rid, flags = (entry[k] for k in ("capacity", "index", "type", "id", "flags"))
    payload = bytes.fromhex(entry["payload"])
    assert len(raw) == entry["padded_size"] == (entry["length"] + 7) & -8
    assert struct.unpack_from("<ii", raw) == (entry["length"], typ)
    if typ != sr.PAD:
        assert entry["length"] == sr.FRAME_HEADER + len(payload)
    assert index % 8 == 0 and index + len(raw) <= cap

    # Decode: the file's bytes at `index`; the reader must deliver the listed frame.
    seg, b1, b2 = segment(cap)
    try:
        data = seg.req_offset + sr.CONTROL_SIZE
        seg._mv[data + index:data + index + len(raw)] = raw
        seg._u64[(seg.req_offset + sr.CB_HEAD) >> 3] = index
        seg._u64[(seg.req_offset + sr.CB_TAIL) >> 3] = index + len(raw)
        reader = sr.RingReader(seg, sr.REQUEST_RING, b2, allowed_types=ALL_TYPES)
        got = reader.read(limit=1 << 20)
        assert reader.head == index + len(raw), "vector not fully consumed"
    finally:
        seg.close()
        b1.close()
        b2.close()
    assert got == ([] if typ == sr.PAD else [(typ, rid, flags, payload)])

    # Encode: the listed frame written into an empty ring at `index` must be the file.
    seg, b1, b2 = segment(cap)
    try:
        data = seg.req_offset + sr.CONTROL_SIZE
        for field in (sr.CB_HEAD, sr.CB_HEAD_CACHE, sr.CB_TAIL):
            seg._u64[(seg.req_offset + field) >> 3] = index
        writer = sr.RingWriter(seg, sr.REQUEST_RING, own=b1, peer=b2)
        if typ == sr.PAD:
            # The writer pads when a frame does not fit before the wrap (README.md:
            # the Go test writes a 16-byte payload); the frame then starts at 0.
            frame = b"p" * 16
            assert writer.try_write(sr.REQ_BODY, 1, sr.BEGIN | sr.END, frame)
            assert bytes(seg._mm[data + index:data + index + len(raw)]) == raw
            assert struct.unpack_from("<ii", seg._mm, data) == (sr.FRAME_HEADER + len(frame), sr.REQ_BODY)
        else:
            assert writer.try_write(typ, rid, flags, payload)
            assert bytes(seg._mm[data + index:data + index + len(raw)]) == raw
    finally:
        seg.close()
        b1.close()
        b2.close()

