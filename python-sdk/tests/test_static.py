"""app.static and FileResponse: the manifest, the RESP_FILE codec, and TestClient."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from covet import Covet, FileResponse, Request
from covet._control import ProtocolError, validate_routes
from covet._payloads import FRAME_RESP_FILE, decode_resp_file, encode_resp_file
from covet.testing import TestClient


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    public = tmp_path / "public"
    (public / "docs").mkdir(parents=True)
    (public / "hello.txt").write_text("hello\n")
    (public / "docs" / "index.html").write_text("<h1>docs</h1>")
    (tmp_path / "secret.txt").write_text("top secret")
    (public / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (public / "alias.txt").symlink_to("hello.txt")
    return public


def build(public: Path) -> Covet:
    app = Covet(openapi_url=None)
    app.static("/assets", public, index=True, name="assets")

    @app.get("/download/{name}")
    async def download(req: Request, name: str) -> FileResponse:
        return FileResponse(public / name, filename="report é.txt")

    @app.get("/typed")
    async def typed(req: Request) -> FileResponse:
        return FileResponse(str(public / "hello.txt"), status_code=203, media_type="application/x-demo")

    return app


def test_manifest(tree: Path) -> None:
    app = build(tree)
    entry = app.manifest()[0]
    assert entry == {
        "method": "GET",
        "path": "/assets/{path...}",
        "kind": "static",
        "options": {"name": "assets", "dir": str(tree.resolve()), "index": True},
    }
    validate_routes(app.manifest())


def test_static_refuses(tree: Path, tmp_path: Path) -> None:
    app = Covet(openapi_url=None)
    with pytest.raises(ValueError, match="does not exist or is not a directory"):
        app.static("/a", tmp_path / "missing")
    with pytest.raises(ValueError, match="does not exist or is not a directory"):
        app.static("/a", tree / "hello.txt")
    with pytest.raises(ValueError, match="would take every path"):
        app.static("/", tree)
    with pytest.raises(ValueError, match="starting with '/'"):
        app.static("assets", tree)
    app.static("/a/", tree)  # the trailing slash is dropped
    assert app.manifest()[0]["path"] == "/a/{path...}"
    with pytest.raises(ValueError, match="already registered"):
        app.static("/a", tree)
    app.freeze()
    with pytest.raises(RuntimeError, match="frozen"):
        app.static("/b", tree)


def test_validate_static_routes() -> None:
    good = {"method": "GET", "path": "/s/{p...}", "kind": "static", "options": {"dir": "/srv"}}
    validate_routes([good])
    for change, problem in [
        ({"method": "POST"}, "method is GET"),
        ({"options": {}}, "needs option dir"),
        ({"options": {"dir": "relative"}}, "needs option dir"),
        ({"path": "/s/{p}"}, "catch-all"),
        ({"options": {"dir": "/srv", "index": 1}}, "index is not a bool"),
    ]:
        with pytest.raises(ProtocolError, match=problem):
            validate_routes([{**good, **change}])


def test_resp_file_codec() -> None:
    assert FRAME_RESP_FILE == 36
    payload = encode_resp_file(200, [("content-disposition", b'attachment; filename="r.txt"')], "/srv/files/r.txt")
    # The bytes workerproto.RespFile.Append (Go) makes of the same answer.
    assert payload.hex() == (
        "93ccc892b3636f6e74656e742d646973706f736974696f6ec41c6174746163686d656e743b2066696c656e616d653d"
        "22722e74787422b02f7372762f66696c65732f722e747874"
    )
    assert decode_resp_file(payload) == (200, [("content-disposition", b'attachment; filename="r.txt"')], "/srv/files/r.txt")
    for status, headers, path, problem in [
        (199, [], "/a", "status"),
        (200, [], "relative", "absolute"),
        (200, [], "/a\x00b", "NUL"),
        (200, [], "/" + "a" * 4096, "at most 4096"),
        (200, [], "/\udc80", "UTF-8"),
        (200, [("Bad Name", b"x")], "/a", "HTTP token"),
        (200, [("x", b"a\nb")], "/a", "control character"),
    ]:
        with pytest.raises(ValueError, match=problem):
            encode_resp_file(status, headers, path)


def test_file_response_fields(tree: Path) -> None:
    r = FileResponse(tree / "hello.txt", filename="report é.txt")
    assert r.path == str(tree / "hello.txt") and os.path.isabs(r.path)
    assert r.headers["content-disposition"] == "attachment; filename=\"report _.txt\"; filename*=UTF-8''report%20%C3%A9.txt"
    assert FileResponse("rel.txt").path == os.path.join(os.getcwd(), "rel.txt")
    with pytest.raises(ValueError, match="NUL"):
        FileResponse("/a\x00")
    with pytest.raises(ValueError, match="control characters"):
        FileResponse("/a", filename="a\nb")
    with pytest.raises(ValueError, match="status"):
        FileResponse("/a", status_code=700)


def test_testclient_serves_static(tree: Path) -> None:
    with TestClient(build(tree)) as client:
        r = client.get("/assets/hello.txt")
        assert (r.status_code, r.content, r.headers["content-type"]) == (200, b"hello\n", "text/plain; charset=utf-8")
        r = client.head("/assets/hello.txt")
        assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "6")
        assert client.get("/assets/alias.txt").content == b"hello\n"
        r = client.get("/assets/docs/")
        assert (r.status_code, r.content) == (200, b"<h1>docs</h1>")
        r = client.get("/assets/docs?x=1")
        assert (r.status_code, r.headers["location"]) == (301, "/assets/docs/?x=1")
        r = client.get("/assets/missing.txt")
        assert (r.status_code, r.text, r.headers["content-type"]) == (404, "Not Found\n", "text/plain; charset=utf-8")
        assert client.get("/assets/escape.txt").status_code == 404
        assert client.get("/assets/../secret.txt").status_code == 400
        assert client.get("/assets/%2e%2e/secret.txt").status_code == 400
        assert client.get("/assets/docs%2f..%2f..%2fsecret.txt").status_code == 404
        assert client.get("/assets/..%5csecret.txt").status_code == 404


def test_testclient_file_response(tree: Path) -> None:
    with TestClient(build(tree)) as client:
        r = client.get("/download/hello.txt")
        assert (r.status_code, r.content) == (200, b"hello\n")
        assert r.headers["content-disposition"].startswith('attachment; filename="report _.txt"')
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        r = client.get("/download/gone.txt")
        assert (r.status_code, r.text) == (404, "Not Found\n")
        r = client.get("/typed")
        assert (r.status_code, r.headers["content-type"], r.content) == (203, "application/x-demo", b"hello\n")
        r = client.head("/download/hello.txt")
        assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "6")
