"""socketify.py native API: the bench workloads. Run as `python socketify_app.py HOST PORT`
(one process: socketify's native App has no multi-process mode of its own)."""

import asyncio
import json
import sys

from socketify import App, AppListenOptions

from common import BODY_1M, BODY_10K, JSON_MESSAGE, PLAINTEXT, SLEEP_S, SLEPT

TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"
OCTET = b"application/octet-stream"

app = App()


def plaintext(res, req):
    res.send(PLAINTEXT, content_type=TEXT)


def json_(res, req):
    res.send(json.dumps(JSON_MESSAGE, separators=(",", ":")).encode(), content_type=JSON)


def user(res, req):
    tail = req.get_parameter(0)
    if not tail.isdigit():
        res.send(b"Not Found", content_type=TEXT, status=404)
        return
    res.send(json.dumps({"id": int(tail)}, separators=(",", ":")).encode(), content_type=JSON)


def ten_k(res, req):
    res.send(BODY_10K, content_type=OCTET)


def one_m(res, req):
    res.send(BODY_1M, content_type=OCTET)


# The event loop holds tasks weakly: while an async handler awaits (the body, a sleep),
# nothing else refers to the response object, and a garbage collection frees the handle
# socketify hands to its C callbacks (a fatal cffi error or a segfault under load).
# Holding each response until it is answered prevents that.
_in_flight: set = set()


def held(handler):
    async def run(res, req):
        _in_flight.add(res)
        try:
            await handler(res, req)
        finally:
            _in_flight.discard(res)
    return run


@held
async def echo(res, req):
    data = await res.get_data()
    res.send(data.getvalue(), content_type=OCTET)


@held
async def sleep(res, req):
    await asyncio.sleep(SLEEP_S)
    if not res.aborted:  # the client may have gone while we slept
        res.send(SLEPT, content_type=TEXT)


app.get("/plaintext", plaintext)
app.get("/json", json_)
app.get("/users/:id", user)
app.get("/10k", ten_k)
app.get("/1m", one_m)
app.post("/echo", echo)
app.get("/sleep", sleep)

if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    app.listen(AppListenOptions(port=port, host=host), lambda cfg: print(f"listening on {host}:{port}", flush=True))
    app.run()
