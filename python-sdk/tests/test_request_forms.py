"""Request.form(): urlencoded and multipart bodies, and malformed input."""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covet import Covet, FormData, HTTPException, Request, UploadFile
from covet._forms import parse_form
from covet._multipart import MultipartError, parse_options_header
from covet.testing import TestClient, _encode_multipart


async def describe(form: FormData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            await value.seek(0)
            head = await value.read(3)
            out.setdefault(name, []).append({
                "filename": value.filename, "content_type": value.content_type,
                "size": value.size, "sha": hashlib.sha256(data).hexdigest(),
                "head": head.decode("latin-1"),
                "disposition": value.headers.get("content-disposition"),
            })  # fmt: skip
        else:
            out.setdefault(name, []).append(value)
    return out


@pytest.fixture
def client() -> TestClient:
    app = Covet()

    @app.post("/form")
    async def form(req: Request) -> dict[str, Any]:
        parsed = await req.form()
        assert await req.form() is parsed
        return await describe(parsed)

    return TestClient(app)


def test_urlencoded_form(client: TestClient) -> None:
    r = client.post("/form", data={"name": "Zoë", "tags": ["a", "b"], "empty": ""})
    assert r.json() == {"name": ["Zoë"], "tags": ["a", "b"], "empty": [""]}


def test_urlencoded_raw_utf8_and_plus(client: TestClient) -> None:
    r = client.post(
        "/form",
        content="q=a+b&x=%E2%9C%93&raw=ü".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.json() == {"q": ["a b"], "x": ["✓"], "raw": ["ü"]}


def test_multipart_with_files(client: TestClient) -> None:
    big = os.urandom(8 * 1024 * 1024 + 3)
    r = client.post(
        "/form",
        data={"title": "résumé", "n": ["1", "2"]},
        files={
            "doc": ("naïve \"q\".txt", b"hello\r\n--not-a-boundary\r\n", "text/plain"),
            "big": ("big.bin", io.BytesIO(big)),
            "plain": b"abc",
        },
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["title"] == ["résumé"] and got["n"] == ["1", "2"]
    [doc] = got["doc"]
    assert doc["filename"] == "naïve %22q%22.txt"  # browsers' escaping of '"', kept as sent
    assert doc["content_type"] == "text/plain" and doc["size"] == 25 and doc["head"] == "hel"
    assert doc["disposition"].startswith("form-data; name=\"doc\"")
    [big_part] = got["big"]
    assert big_part["size"] == len(big) and big_part["sha"] == hashlib.sha256(big).hexdigest()
    assert big_part["content_type"] == "application/octet-stream"
    assert got["plain"][0]["filename"] == "upload"


def multipart(body: bytes, boundary: str = "XyZ") -> dict[str, Any]:
    return {"content": body, "headers": {"content-type": f'multipart/form-data; boundary="{boundary}"'}}


def test_multipart_handwritten_edge_cases(client: TestClient) -> None:
    body = (
        b"preamble ignored\r\n"
        b"--XyZ  \r\n"  # transport padding after the boundary
        b'Content-Disposition: form-data; name="a"\r\n\r\n'
        b"1\r\n"
        b"--XyZ\r\n"
        b"Content-Disposition: form-data; name=\"f\"; filename=\"x.bin\"; filename*=UTF-8''%E2%82%AC.bin\r\n"
        b"Content-Type: image/png\r\n\r\n"
        b"\x89PNG\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="latin"\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n'
        b"caf\xe9\r\n"
        b"--XyZ--\r\nepilogue ignored"
    )
    got = client.post("/form", **multipart(body)).json()
    assert got["a"] == ["1"] and got["latin"] == ["café"]
    assert got["f"][0]["filename"] == "€.bin" and got["f"][0]["content_type"] == "image/png"


@pytest.mark.parametrize(
    ("body", "boundary", "problem"),
    [
        (b"no boundary here", "XyZ", "opening boundary"),
        (b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated", "XyZ", "not terminated"),
        (b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"", "XyZ", "header block"),
        (b"--XyZ\r\nno colon line\r\n\r\nx\r\n--XyZ--", "XyZ", "malformed part header"),
        (b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--", "XyZ", "no Content-Disposition"),
        (b"--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--", "XyZ", "not 'form-data'"),
        (b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--", "XyZ", "has no name"),
        (b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\xfe\r\n--XyZ--", "XyZ", "not valid utf-8"),
        (b"--XyZgarbage", "XyZ", "not followed by CRLF"),
        (b"--" + b"a" * 71, "a" * 71, "1 to 70"),
        (b"--XyZ\r\n" + b"X-A: b\r\n" * 40 + b"\r\nx\r\n--XyZ--", "XyZ", "more than 32 header"),
        (b"--XyZ\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\nx\r\n--XyZ--", "XyZ", "too large"),
    ],
)
def test_malformed_multipart_is_400(client: TestClient, body: bytes, boundary: str, problem: str) -> None:
    r = client.post("/form", **multipart(body, boundary))
    assert r.status_code == 400
    assert problem in r.json()["detail"]


def test_multipart_without_boundary_param_is_400(client: TestClient) -> None:
    r = client.post("/form", content=b"--x--", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400


def test_too_many_parts_is_400(client: TestClient) -> None:
    part = b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n'
    r = client.post("/form", **multipart(part * 1001 + b"--B--", "B"))
    assert r.status_code == 400 and "more than 1000 parts" in r.json()["detail"]


def test_bad_urlencoded_utf8_is_400(client: TestClient) -> None:
    r = client.post("/form", content=b"a=%ff", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400


def test_other_content_type_is_415(client: TestClient) -> None:
    r = client.post("/form", json={"a": 1})
    assert r.status_code == 415


_PREFIXES = st.sampled_from([b"", b"--XyZ\r\n", b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n'])


@settings(max_examples=300, deadline=None)
@given(prefix=_PREFIXES, data=st.binary(max_size=300), suffix=st.sampled_from([b"", b"\r\n--XyZ--", b"\r\n--XyZ"]))
def test_multipart_parser_only_ever_answers_400(prefix: bytes, data: bytes, suffix: bytes) -> None:
    try:
        form = parse_form("multipart/form-data; boundary=XyZ", prefix + data + suffix)
    except HTTPException as exc:
        assert exc.status == 400
    else:
        assert all(isinstance(v, (str, UploadFile)) for _, v in form.multi_items())


@settings(max_examples=100, deadline=None)
@given(
    fields=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: k != "file"), st.text(max_size=20), max_size=4
    ),
    content=st.binary(max_size=200),
)
def test_multipart_round_trip(fields: dict[str, str], content: bytes) -> None:
    body, content_type = _encode_multipart(fields, {"file": ("f.bin", content)})
    form = parse_form(content_type, body)
    upload = form["file"]
    assert isinstance(upload, UploadFile) and upload.file.getvalue() == content
    for name, value in fields.items():
        # The client escapes '"', CR and LF in names as browsers do; the value survives.
        got = form.getlist(name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A"))
        assert value in got


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_header_option_parser_never_raises_unexpectedly(value: str) -> None:
    try:
        main, params = parse_options_header(value)
    except MultipartError:
        return  # only for a malformed RFC 8187 extended value
    assert main == main.strip().lower() and all(k == k.lower() for k in params)
