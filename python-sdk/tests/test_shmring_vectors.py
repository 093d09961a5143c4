"""Golden ring-record vectors shared with Go (workerproto/testdata/records/).

Each ``*.hex`` holds the bytes of one or more consecutive records (lower-case hex,
whitespace ignored, ``#`` lines are comments). The reader decodes them, the writer
re-encodes what it read, and the two byte strings must be equal. If ``records.json``
has an entry named after the file (without ``.hex``), the decoded records are checked
against it. The entry is either a list of records or a map with ``records`` and
optionally ``capacity`` and ``index`` (where the bytes start in the ring; needed for
vectors with a PAD). A record is a map with any of ``type``, ``id``, ``flags`` and
``payload`` (hex string).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from covet import _shmring as sr

try:  # tests/ may or may not be a package
    from .shmring_gateway import (  # type: ignore[import-not-found,unused-ignore]
        make_bell, make_memfd)
except ImportError:
    from shmring_gateway import (  # type: ignore[no-redef,unused-ignore]
        make_bell, make_memfd)

RECORDS_DIR = Path(__file__).resolve().parents[2] / "workerproto" / "testdata" / "records"
ALL_TYPES = frozenset({sr.REQ_HEAD, sr.REQ_BODY, sr.RESP_HEAD, sr.RESP_BODY, sr.RESP, sr.CANCEL,
                       sr.ERROR, sr.WINDOW, sr.CONTROL, *range(80, 112)})

pytestmark = pytest.mark.skipif(
    not RECORDS_DIR.is_dir() or not any(RECORDS_DIR.glob("*.hex")),
    reason=f"no golden record vectors yet: {RECORDS_DIR} is missing or has no *.hex",
)


def parse_hex(path: Path) -> bytes:
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    return bytes.fromhex("".join("".join(lines).split()))


def expectations() -> dict[str, object]:
    """records.json as {file stem: {"records": [...], "capacity": c, "index": i}}.

    The Go suite writes a list of entries, one record per file, under "records", each
    naming its ``file``; a map keyed by stem is accepted as well."""
    f = RECORDS_DIR / "records.json"
    if not f.is_file():
        return {}
    doc = json.loads(f.read_text())
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        out: dict[str, object] = {}
        for e in doc["records"]:
            rec = {k: e[k] for k in ("type", "id", "flags", "payload") if k in e}
            out[Path(e["file"]).stem] = {"records": [rec], "capacity": e.get("capacity"),
                                         "index": e.get("index", 0)}
        return out
    return doc if isinstance(doc, dict) else {}


def vectors() -> list[Path]:
    return sorted(RECORDS_DIR.glob("*.hex")) if RECORDS_DIR.is_dir() else []


def capacity_for(raw: bytes) -> int:
    cap = 4096
    while cap // 8 < len(raw) and cap < (1 << 30):  # every record is <= len(raw)
        cap *= 2
    return cap


def segment(cap: int) -> tuple[sr.Segment, sr.Doorbell, sr.Doorbell]:
    seg = sr.Segment.open(make_memfd(cap, 4096))
    return seg, sr.Doorbell(make_bell()), sr.Doorbell(make_bell())


@pytest.mark.parametrize("path", vectors(), ids=lambda p: p.name)
def test_vector_decodes_and_reencodes_byte_for_byte(path: Path) -> None:
    raw = parse_hex(path)
    entry = expectations().get(path.stem)
    meta = entry if isinstance(entry, dict) else {}
    want = meta.get("records", entry if isinstance(entry, list) else None)
    cap = int(meta.get("capacity") or capacity_for(raw))
    if isinstance(want, list):  # PAD records are consumed, never delivered
        pads = [w for w in want if w.get("type") == sr.PAD]
        want = [w for w in want if w.get("type") != sr.PAD]
    else:
        pads = []
    index = int(meta.get("index", 0))
    assert index % 8 == 0 and index + len(raw) <= cap + capacity_for(raw)

    seg, b1, b2 = segment(cap)
    try:
        data = seg.req_offset + sr.CONTROL_SIZE
        u64 = seg._u64
        first = min(len(raw), cap - index)
        seg._mv[data + index:data + index + first] = raw[:first]
        seg._mv[data:data + len(raw) - first] = raw[first:]
        u64[(seg.req_offset + sr.CB_HEAD) >> 3] = index
        u64[(seg.req_offset + sr.CB_TAIL) >> 3] = index + ((len(raw) + 7) & -8)
        reader = sr.RingReader(seg, sr.REQUEST_RING, b2, allowed_types=ALL_TYPES)
        got = reader.read(limit=1 << 20)
        assert reader.head == index + ((len(raw) + 7) & -8), "vector not fully consumed"
    finally:
        seg.close()
        b1.close()
        b2.close()

    if want is not None:
        assert isinstance(want, list) and len(want) == len(got)
        for w, (t, i, f, p) in zip(want, got, strict=True):
            assert w.get("type", t) == t
            assert w.get("id", i) == i
            assert w.get("flags", f) == f
            assert bytes.fromhex(w.get("payload", p.hex())) == p

    seg, b1, b2 = segment(cap)
    try:
        data = seg.req_offset + sr.CONTROL_SIZE
        seg._u64[(seg.req_offset + sr.CB_HEAD) >> 3] = index
        seg._u64[(seg.req_offset + sr.CB_HEAD_CACHE) >> 3] = index
        seg._u64[(seg.req_offset + sr.CB_TAIL) >> 3] = index
        writer = sr.RingWriter(seg, sr.REQUEST_RING, own=b1, peer=b2)
        for t, i, f, p in got:
            assert writer.try_write(t, i, f, p)
        if pads and not got:
            # A lone PAD vector: the writer makes one when a record does not fit
            # before the wrap. Its header must match; the record goes to index 0.
            assert writer.try_write(sr.REQ_BODY, 1, sr.BEGIN | sr.END, b"x" * (cap - index))
            assert seg._mm[data + index:data + index + 8] == raw[:8]
            return
        first = min(len(raw), cap - index)
        out = (seg._mm[data + index:data + index + first]
               + seg._mm[data:data + len(raw) - first])
        assert out == raw
    finally:
        seg.close()
        b1.close()
        b2.close()

