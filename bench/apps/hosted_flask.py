"""bench/hosting.py's Flask app, the same under CovetPy (`--interface wsgi`), gunicorn's
sync worker and Granian (WSGI): a plaintext GET, a JSON GET with a path parameter, a
JSON POST echoed back."""

from flask import Flask, abort, jsonify, request

from hosted_common import PLAINTEXT, USERS

app = Flask(__name__)


@app.get("/plaintext")
def plaintext():
    return PLAINTEXT, 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/users/<int:user_id>")
def user(user_id):
    found = USERS.get(user_id)
    if found is None:
        abort(404)
    return jsonify(found)


@app.post("/echo")
def echo():
    return jsonify(request.get_json())
