"""A Flask app for the hosting differential test (test_hosting_differential.py),
served unchanged by gunicorn (sync workers) and by CovetPy (``--interface wsgi``):
/echo and the routes every hosted app has."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, Response, abort, jsonify, redirect, request

from echo_shape import NO_BODY, UNICODE_TEXT, describe, pattern, wsgi_view

app = Flask(__name__)

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@app.route("/echo", methods=METHODS)
@app.route("/echo/<path:rest>", methods=METHODS)
def echo(rest: str = "") -> Response:
    body = request.get_data()
    headers, extra = wsgi_view(request.environ)
    doc = describe(
        framework="flask", method=request.method, path=request.path,
        query_string=request.query_string.decode("latin-1"), query=request.args.items(multi=True),
        headers=headers, cookies=request.cookies.items(multi=True), body=body, extra=extra,
    )  # fmt: skip
    return jsonify(doc)


@app.get("/only-get")
def only_get() -> Response:
    return jsonify({"only": "get"})


@app.get("/status/<int:code>")
def status(code: int) -> Response:
    if code in NO_BODY:
        return Response(status=code)
    return Response(f"status {code}\n", status=code, mimetype="text/plain")


@app.get("/error")
def error() -> Response:
    raise RuntimeError("a bug in the handler")


@app.get("/http-error")
def http_error() -> Response:
    abort(409, "conflict here")


@app.get("/redirect")
def redirect_to() -> Response:
    return redirect(request.args.get("to", "/echo/landed"), int(request.args.get("code", 302)))


@app.get("/cookies/set")
def set_cookies() -> Response:
    resp = Response("cookies set\n", mimetype="text/plain")
    resp.set_cookie("session", "abc123", httponly=True, path="/")
    resp.set_cookie("theme", "dark", max_age=3600, samesite="Strict")
    resp.set_cookie("quoted", "a b,c", secure=True)
    return resp


@app.get("/unicode")
def unicode() -> Response:
    return Response(UNICODE_TEXT, mimetype="text/plain", headers={"x-latin1": "caf\u00e9"})


@app.get("/unicode/json")
def unicode_json() -> Response:
    return jsonify({"text": UNICODE_TEXT})


@app.get("/headers/repeat")
def headers_repeat() -> Response:
    resp = Response("repeated\n", mimetype="text/plain")
    for name, value in (("x-multi", "one"), ("x-multi", "two"), ("x-empty", ""), ("vary", "accept")):
        resp.headers.add(name, value)
    return resp


@app.get("/large")
def large() -> Response:
    return Response(pattern(int(request.args.get("size", 1 << 20))), mimetype="application/octet-stream")


@app.get("/stream")
def stream() -> Response:
    n, size = int(request.args.get("n", 3)), int(request.args.get("size", 10))

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            yield pattern(size, i * size)

    return Response(chunks(), mimetype="text/plain")


@app.post("/form")
def form() -> Response:
    return jsonify({"form": [[k, v] for k, v in request.form.items(multi=True)]})


@app.post("/json")
def json_body() -> Response:
    data = request.get_json(silent=True)
    if data is None:
        abort(400, "not JSON")
    return jsonify({"got": data})
