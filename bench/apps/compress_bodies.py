"""The bodies of bench/compress.py: the same bytes from the CovetPy worker
(compress_app.py) and from nginx (files written by bench/compress.py).
Deterministic, so every run and every server compresses the same input."""

import json
import random

WORDS = ("the gateway owns every socket and hands each parsed request to a worker through a ring "
         "buffer framed with MessagePack while Python handlers answer with ordinary decorated "
         "functions").split()


def json_body(size: int = 64 << 10) -> bytes:
    """An API answer: a list of records, about size bytes of JSON."""
    rng = random.Random(1)
    items, n = [], 16
    while n < size - 200:
        item = {"id": len(items), "name": f"user-{rng.randrange(100000)}",
                "email": f"user{rng.randrange(100000)}@example.com", "active": rng.random() < 0.5,
                "score": round(rng.random() * 100, 3), "tags": [f"a{rng.randrange(50)}", f"b{rng.randrange(50)}"]}
        items.append(item)
        n += len(json.dumps(item, separators=(",", ":"))) + 1
    return json.dumps({"items": items}, separators=(",", ":")).encode()


def html_body(size: int = 1 << 20) -> bytes:
    """A long HTML page of about size bytes."""
    rng = random.Random(2)
    parts = ["<!doctype html><html><head><title>Report</title><link rel=stylesheet href=/s.css></head><body>\n"]
    n, i = len(parts[0]), 0
    while n < size - 32:
        row = (f'<div class="row r{i % 7}"><a href="/item/{rng.randrange(1000000)}">'
               + " ".join(rng.choice(WORDS) for _ in range(12)) + " </a></div>\n")
        parts.append(row)
        n += len(row)
        i += 1
    parts.append("</body></html>\n")
    return "".join(parts).encode()


BODIES = {"json64k": (json_body(), "application/json"), "html1m": (html_body(), "text/html; charset=utf-8")}
