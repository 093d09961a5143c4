"""Response compression end to end: a real gateway with ``compression: gzip,br,zstd``
(COVET_COMPRESSION) in front of a real worker (compress_app.py), over HTTP/1.1 and h2c,
with httpx reading the raw bytes and Python's zlib (gzip), ``brotli`` and ``zstandard``
decoding them: q-value negotiation, Vary, the bodies left alone (small, already
encoded, images, no-transform, server-sent events, HEAD, a route with
``compress=False``), and a streamed response that stays incremental once compressed.
"""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import compress_app as A
from conftest import Gateway, serving_gateway

httpx = pytest.importorskip("httpx", reason="httpx[http2] is not installed (the Makefile's PYDEPS has it)")
pytest.importorskip("h2", reason="httpx's HTTP/2 extra is not installed: pip install 'httpx[http2]'")
brotli = pytest.importorskip("brotli", reason="brotli is not installed (the Makefile's PYDEPS has it)")
zstandard = pytest.importorskip("zstandard", reason="zstandard is not installed (the Makefile's PYDEPS has it)")

CODINGS = ["gzip", "br", "zstd"]
_tokens = itertools.count()


def decoder(coding: str) -> Callable[[bytes], bytes]:
    """A streaming decoder: fed the compressed bytes so far, piece by piece, it returns
    what they decode to."""
    if coding == "gzip":
        return zlib.decompressobj(wbits=31).decompress
    if coding == "br":
        return brotli.Decompressor().process  # type: ignore[no-any-return]
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress  # type: ignore[no-any-return]
    raise ValueError(coding)


def decode(coding: str | None, data: bytes) -> bytes:
    if coding is None:
        return data
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return brotli.decompress(data)  # type: ignore[no-any-return]
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)  # type: ignore[no-any-return]


@dataclass
class CGW:
    gw: Gateway
    client: httpx.Client
    wire: str
    signals: Path

    def raw(self, path: str, ae: str | None, method: str = "GET") -> tuple[int, httpx.Headers, bytes]:
        """The response's status, head and body as it came (not decoded)."""
        headers = {} if ae is None else {"Accept-Encoding": ae}
        with self.client.stream(method, self.gw.base_url + path, headers=headers) as r:
            assert r.http_version == self.wire
            return r.status_code, r.headers, b"".join(r.iter_raw())


@pytest.fixture(scope="module", params=[("http1", ()), ("h2c", ("--h2c",))], ids=["http1", "h2c"])
def cgw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CGW]:
    name, flags = request.param
    tmp = tmp_path_factory.mktemp(f"compress-{name}")
    signals = tmp / "signals"
    signals.mkdir()
    h2 = name == "h2c"
    client = httpx.Client(http1=not h2, http2=h2, timeout=30)
    del client.headers["accept-encoding"]  # each request says what it accepts, or nothing

    def ready(gw: Gateway) -> bool:
        try:
            return client.get(gw.base_url + "/ready").text == "ready"
        except httpx.HTTPError:
            return False

    try:
        with serving_gateway(tmp / "gateway.log", "compress", "compress_app", 1, ready, flags=flags,
                             COVET_COMPRESSION="gzip,br,zstd", COMPRESS_TEST_DIR=str(signals)) as gw:  # fmt: skip
            yield CGW(gw, client, "HTTP/2" if h2 else "HTTP/1.1", signals)
    finally:
        client.close()


@pytest.mark.parametrize("coding", CODINGS)
def test_round_trip(cgw: CGW, coding: str) -> None:
    # 64 KiB of JSON: held, compressed whole, sent with its exact length.
    status, head, body = cgw.raw("/json", coding)
    assert status == 200 and head["content-encoding"] == coding
    assert head["vary"].lower() == "accept-encoding"
    assert head["content-type"] == "application/json"
    assert int(head["content-length"]) == len(body) < len(A.JSON_BODY) // 2
    assert decode(coding, body) == A.JSON_BODY
    # 1 MiB of HTML: compressed as it comes, without a length.
    status, head, body = cgw.raw("/html", coding)
    assert status == 200 and head["content-encoding"] == coding and "content-length" not in head
    assert len(body) < len(A.HTML_BODY) // 4
    assert decode(coding, body) == A.HTML_BODY


@pytest.mark.parametrize(("ae", "want"), [
    ("gzip", "gzip"),
    ("br", "br"),
    ("zstd", "zstd"),
    ("gzip, br, zstd", "gzip"),                    # equal weights: the configured order
    ("zstd, br", "br"),
    ("gzip;q=0.5, br;q=0.9, zstd;q=0.7", "br"),
    ("gzip;q=0.5, zstd;q=0.5", "gzip"),
    ("GZIP;Q=0.2, Zstd;q=0.3", "zstd"),
    ("x-gzip", "gzip"),
    ("gzip;q=0, *", "br"),                         # * covers the codings not named
    ("gzip;q=0, br;q=0, *;q=0.1", "zstd"),
    ("*", "gzip"),
    ("*;q=0", None),
    ("gzip;q=0", None),
    ("identity", None),
    ("identity;q=0", None),                        # identity is still what we can send
    ("deflate, compress", None),
    ("", None),
    (None, None),                                  # no Accept-Encoding at all
    ("gzip;q=2, br", "br"),                        # a malformed weight: that element is ignored
])  # fmt: skip
def test_negotiation(cgw: CGW, ae: str | None, want: str | None) -> None:
    status, head, body = cgw.raw("/json", ae)
    assert status == 200
    assert head.get("content-encoding") == want
    assert decode(want, body) == A.JSON_BODY


def test_small_body(cgw: CGW) -> None:
    status, head, body = cgw.raw("/small", "gzip, br, zstd")
    assert status == 200 and "content-encoding" not in head and body == A.SMALL_BODY
    assert head["vary"].lower() == "accept-encoding"  # a larger answer would have been compressed


def test_vary_merged_etag_weakened(cgw: CGW) -> None:
    status, head, body = cgw.raw("/vary-etag", "zstd")
    assert status == 200 and head["content-encoding"] == "zstd"
    assert [v.strip().lower() for v in head["vary"].split(",")] == ["origin", "accept-encoding"]
    assert head["etag"] == 'W/"v1"'
    assert decode("zstd", body) == A.JSON_BODY


@pytest.mark.parametrize("path", ["/encoded", "/png", "/no-transform"])
def test_left_alone(cgw: CGW, path: str) -> None:
    status, head, body = cgw.raw(path, "gzip, br, zstd")
    assert status == 200 and "vary" not in head
    if path == "/encoded":  # the worker's own gzip, untouched
        assert head["content-encoding"] == "gzip" and gzip.decompress(body) == A.JSON_BODY
    elif path == "/png":
        assert "content-encoding" not in head and body == A.PNG_BODY
    else:
        assert "content-encoding" not in head and body == A.JSON_BODY


def test_head(cgw: CGW) -> None:
    status, head, body = cgw.raw("/json", "gzip", method="HEAD")
    assert status == 200 and "content-encoding" not in head and body == b""


def _stream_incrementally(cgw: CGW, path: str, ae: str, want: list[bytes],
                          decode_piece: Callable[[bytes], bytes]) -> httpx.Headers:
    """GET path (which waits for a signal file before each piece after the first),
    decoding the raw bytes as they come: once the pieces so far have decoded, the next
    one is released. Returns the head."""
    token = f"t{next(_tokens)}"
    got = b""
    released = 0
    with cgw.client.stream("GET", f"{cgw.gw.base_url}{path}/{token}", headers={"Accept-Encoding": ae}) as r:
        assert r.status_code == 200 and r.http_version == cgw.wire
        for chunk in r.iter_raw():
            got += decode_piece(chunk)
            assert not got.startswith(A.NOT_RELEASED) and A.NOT_RELEASED.strip() not in got, got
            while released + 1 < len(want) and got.startswith(b"".join(want[: released + 1])):
                released += 1
                (cgw.signals / f"{token}.{released}").touch()
        head = r.headers
    assert got == b"".join(want)
    assert released == len(want) - 1
    return head


@pytest.mark.parametrize("coding", CODINGS)
def test_streamed_stays_incremental(cgw: CGW, coding: str) -> None:
    """Each piece the worker streams reaches the client compressed and flushed: the
    client decodes it before the worker sends the next (which waits for that)."""
    head = _stream_incrementally(cgw, "/stream", coding, A.STREAM_LINES, decoder(coding))
    assert head["content-encoding"] == coding and "content-length" not in head
    assert head["vary"].lower() == "accept-encoding"


def test_sse_not_compressed(cgw: CGW) -> None:
    want = [f"id: {i}\ndata: event {i}\n\n".encode() for i in range(3)]
    head = _stream_incrementally(cgw, "/sse", "gzip, br, zstd", want, lambda b: b)
    assert head["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in head


def test_route_option_off(cgw: CGW) -> None:
    status, head, body = cgw.raw("/uncompressed", "gzip, br, zstd")
    assert status == 200 and "content-encoding" not in head and body == A.JSON_BODY
