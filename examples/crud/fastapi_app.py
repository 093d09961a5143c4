"""The CRUD API of app.py written for FastAPI, as a FastAPI user would write it: the
same routes, models, constraints and dependencies. integration/python/
test_fastapi_parity.py serves both (this one on uvicorn) and sends them the same
requests; the answers must be the same.

    uvicorn fastapi_app:app --app-dir examples/crud
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from enum import Enum
from typing import Annotated

from fastapi import BackgroundTasks, Body, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

API_TOKEN = "s3cret"


class Category(str, Enum):
    tools = "tools"
    books = "books"
    games = "games"


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    price: float = Field(gt=0)
    category: Category
    tags: list[str] = []
    description: str | None = None


class Item(BaseModel):
    id: int
    name: str
    price: float
    category: Category
    tags: list[str]
    description: str | None


class ItemPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=50)
    price: float | None = Field(None, gt=0)
    category: Category | None = None
    tags: list[str] | None = None
    description: str | None = None


class Store:
    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self.next_id = 1
        self.audit: list[str] = []

    def add(self, data: ItemIn) -> Item:
        item = Item(id=self.next_id, **data.model_dump())
        self.items[item.id] = item
        self.next_id += 1
        return item


STORE = Store()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    STORE.add(ItemIn(name="hammer", price=12.5, category=Category.tools, tags=["steel"]))
    STORE.add(ItemIn(name="atlas", price=30, category=Category.books, tags=["maps", "paper"], description="A world atlas"))
    STORE.add(ItemIn(name="chess", price=25, category=Category.games, tags=["wood"]))
    yield


app = FastAPI(title="crud", lifespan=lifespan)


@app.middleware("http")
async def tag_responses(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers["x-app"] = "crud"
    return response


def get_store() -> Iterator[Store]:
    yield STORE


def current_user(x_token: Annotated[str, Header()]) -> str:
    if x_token != API_TOKEN:
        raise HTTPException(status_code=401, detail="Invalid X-Token header")
    return "admin"


class Page:
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
        raise HTTPException(status_code=404, detail=f"Item {item_id} not found")
    return item


@app.get("/items", tags=["items"])
def list_items(
    store: StoreDep,
    page: Annotated[Page, Depends()],
    q: Annotated[str | None, Query(max_length=20)] = None,
    category: Category | None = None,
    tags: Annotated[list[str], Query()] = [],
    max_price: Annotated[float | None, Query(gt=0)] = None,
    has_description: bool | None = None,
    ids: Annotated[list[int], Query()] = [],
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
    store.items[item_id] = Item(id=item_id, **item.model_dump())
    tasks.add_task(audit, store, f"{user} replaced {item_id}")
    return store.items[item_id]


@app.patch("/items/{item_id}", tags=["items"])
def update_item(item_id: int, patch: ItemPatch, store: StoreDep, user: UserDep, tasks: BackgroundTasks) -> Item:
    # A field left out or given as null is left as it is.
    changes = patch.model_dump(exclude_none=True)
    store.items[item_id] = find(store, item_id).model_copy(update=changes)
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
