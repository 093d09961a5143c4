"""The app of test_typed_handlers.py: typed parameters and bodies, dependencies,
middleware, lifespan state and background tasks, served by the real gateway.

Background tasks append to the file named by COVET_TYPED_LOG (one line per event), so
the test can see from outside that they ran after the client had its response.
"""

import contextlib
import enum
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import msgspec

from covet import BackgroundTasks, Covet, Depends, Header, HTTPException, Query, Request, Response

LOG = os.environ.get("COVET_TYPED_LOG", "")


def note(line: str) -> None:
    if LOG:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(line + "\n")


@contextlib.asynccontextmanager
async def lifespan(app: Covet) -> AsyncIterator[dict[str, Any]]:
    app.state.started = True
    yield {"greeting": "hello"}


app = Covet("typedapp", lifespan=lifespan, title="Typed", version="1.2.3")


class Kind(enum.Enum):
    BOOK = "book"
    GAME = "game"


class ItemIn(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    price: Annotated[float, msgspec.Meta(gt=0)]
    kind: Kind = Kind.BOOK
    tags: list[str] = []


def token(x_token: Annotated[str, Header()]) -> str:
    if x_token != "secret":
        raise HTTPException(401, "bad token")
    return x_token


def session() -> Iterator[str]:
    note("session open")
    yield "session"
    note("session close")


@app.middleware
async def stamp(req: Request, call_next: Any) -> Response:
    req.state.seen_by = "stamp"
    response: Response = await call_next(req)
    response.headers["x-typed"] = "1"
    return response


@app.get("/search", tags=["items"])
async def search(
    q: str,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    kind: Kind | None = None,
    tag: Annotated[list[str], Query()] = [],
) -> dict[str, Any]:
    """Search the items."""
    return {"q": q, "limit": limit, "kind": kind, "tag": tag}


@app.post("/items/{shelf}", status_code=201)
async def create(shelf: int, item: ItemIn, tasks: BackgroundTasks, who: str = Depends(token),
                 db: str = Depends(session)) -> dict[str, Any]:  # fmt: skip
    tasks.add_task(slow_note, item.name)
    return {"shelf": shelf, "item": item, "db": db}


def slow_note(name: str) -> None:
    time.sleep(0.3)  # the client has its answer long before this ends
    note(f"created {name}")


@app.get("/state")
async def state(req: Request) -> dict[str, Any]:
    return {"greeting": req.state.greeting, "seen_by": req.state.seen_by, "started": req.app.state.started}


@app.get("/pair")
def pair() -> tuple[dict[str, int], int, dict[str, str]]:
    return {"sync": 1}, 203, {"x-pair": "yes"}
