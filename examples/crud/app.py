"""A small CRUD API with typed handlers: models with constraints, a dependency chain,
an auth header, a background task, middleware and a lifespan that seeds the store.

fastapi_app.py beside it is the same API written for FastAPI; the integration test
integration/python/test_fastapi_parity.py sends both the same requests and compares
the answers (status, Content-Type, JSON body), the 422 bodies included.

    covet run app:app --workers 1        # from this directory

The store is a module-level object, so every worker process has its own copy
(docs/python-app.md, "Each worker is a process with its own state"): run this with
one worker. A real app keeps its items in a database and opens the connection in
``get_store``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from enum import Enum
from typing import Annotated

import msgspec
from msgspec import Meta

from covet import BackgroundTasks, Body, Covet, Depends, Header, HTTPException, Query, Request, Response

API_TOKEN = "s3cret"

Name = Annotated[str, Meta(min_length=1, max_length=50)]
Price = Annotated[float, Meta(gt=0)]


class Category(str, Enum):
    tools = "tools"
    books = "books"
    games = "games"


class ItemIn(msgspec.Struct):
    """What a client sends to create or replace an item."""

    name: Name
    price: Price
    category: Category
    tags: list[str] = []
    description: str | None = None


class Item(msgspec.Struct):
    """An item as stored and returned."""

    id: int
    name: str
    price: float
    category: Category
    tags: list[str]
    description: str | None


class ItemPatch(msgspec.Struct):
    """A partial update: a field left out (or null) is left as it is."""

    name: Name | None = None
    price: Price | None = None
    category: Category | None = None
    tags: list[str] | None = None
    description: str | None = None


class Store:
    """The items, the next id to give, and the audit log."""

    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self.next_id = 1
        self.audit: list[str] = []

    def add(self, data: ItemIn) -> Item:
        item = Item(self.next_id, **msgspec.structs.asdict(data))
        self.items[item.id] = item
        self.next_id += 1
        return item


# One per worker process: see the module's docstring.
STORE = Store()


@contextlib.asynccontextmanager
async def lifespan(app: Covet) -> AsyncIterator[None]:
    STORE.add(ItemIn("hammer", 12.5, Category.tools, ["steel"]))
    STORE.add(ItemIn("atlas", 30.0, Category.books, ["maps", "paper"], "A world atlas"))
    STORE.add(ItemIn("chess", 25.0, Category.games, ["wood"]))
    yield


app = Covet("crud", title="crud", lifespan=lifespan)


@app.middleware
async def tag_responses(req: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(req)
    response.headers["x-app"] = "crud"
    return response


def get_store() -> Iterator[Store]:
    yield STORE


def current_user(x_token: Annotated[str, Header()]) -> str:
    """The caller, from its X-Token header (422 when there is none, 401 when wrong)."""
    if x_token != API_TOKEN:
        raise HTTPException(401, "Invalid X-Token header")
    return "admin"


class Page:
    """The slice of a listing to return."""

    def __init__(self, skip: int = Query(0, ge=0), limit: Annotated[int, Query(ge=1, le=100)] = 10) -> None:
        self.skip = skip
        self.limit = limit


StoreDep = Annotated[Store, Depends(get_store)]
UserDep = Annotated[str, Depends(current_user)]


def audit(store: Store, line: str) -> None:
    store.audit.append(line)


def find(store: Store, item_id: int) -> Item:
    item = store.items.get(item_id)
    if item is None:
        raise HTTPException(404, f"Item {item_id} not found")
    return item


@app.get("/items", tags=["items"])
def list_items(
    store: StoreDep,
    page: Annotated[Page, Depends()],
    q: Annotated[str | None, Query(max_length=20)] = None,
    category: Category | None = None,
    tags: list[str] = [],
    max_price: Annotated[float | None, Query(gt=0)] = None,
    has_description: bool | None = None,
    ids: list[int] = [],
) -> list[Item]:
    """Items matching every filter given, by id."""
    found = [
        item for item in store.items.values()
        if (q is None or q in item.name)
        and (category is None or item.category is category)
        and all(t in item.tags for t in tags)
        and (max_price is None or item.price <= max_price)
        and (has_description is None or (item.description is not None) == has_description)
        and (not ids or item.id in ids)
    ]  # fmt: skip
    return found[page.skip : page.skip + page.limit]


@app.get("/items/{item_id}", tags=["items"], responses={404: {"description": "No such item"}})
def get_item(item_id: int, store: StoreDep) -> Item:
    return find(store, item_id)


@app.post("/items", status_code=201, tags=["items"])
def create_item(item: ItemIn, store: StoreDep, user: UserDep, tasks: BackgroundTasks) -> Item:
    created = store.add(item)
    tasks.add_task(audit, store, f"{user} created {created.id}")
    return created


@app.put("/items/{item_id}", tags=["items"])
def replace_item(item_id: int, item: ItemIn, store: StoreDep, user: UserDep, tasks: BackgroundTasks) -> Item:
    find(store, item_id)
    store.items[item_id] = Item(item_id, **msgspec.structs.asdict(item))
    tasks.add_task(audit, store, f"{user} replaced {item_id}")
    return store.items[item_id]


@app.patch("/items/{item_id}", tags=["items"])
def update_item(item_id: int, patch: ItemPatch, store: StoreDep, user: UserDep, tasks: BackgroundTasks) -> Item:
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not None}
    store.items[item_id] = msgspec.structs.replace(find(store, item_id), **changes)
    tasks.add_task(audit, store, f"{user} updated {item_id}: {','.join(sorted(changes))}")
    return store.items[item_id]


@app.post("/items/{item_id}/tags", tags=["items"])
def add_tag(
    item_id: int, tag: Annotated[str, Body(embed=True, min_length=1, max_length=20)], store: StoreDep, user: UserDep
) -> Item:
    item = find(store, item_id)
    if tag not in item.tags:
        item.tags.append(tag)
    return item


@app.delete("/items/{item_id}", status_code=204, tags=["items"])
def delete_item(item_id: int, store: StoreDep, user: UserDep, tasks: BackgroundTasks) -> None:
    find(store, item_id)
    del store.items[item_id]
    tasks.add_task(audit, store, f"{user} deleted {item_id}")


@app.get("/audit")
def audit_log(store: StoreDep) -> list[str]:
    """What the write requests did, oldest first (written by background tasks)."""
    return store.audit
