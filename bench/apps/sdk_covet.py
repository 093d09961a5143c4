"""bench/sdk.py's CovetPy app: a typed-body POST (a 10-field msgspec Struct) and a
query-bound GET, written as a user of the typed-handler API writes them."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from covet import Covet, Query
from sdk_common import Category, SortKey

app = Covet("bench")


class Dimensions(msgspec.Struct):
    width: float
    height: float
    depth: float


class Item(msgspec.Struct):
    name: str
    sku: UUID
    price: float
    quantity: int
    in_stock: bool
    tags: list[str]
    category: Category
    created_at: datetime
    dimensions: Dimensions
    description: str | None = None


@app.post("/items")
async def create_item(item: Item):
    return {"id": str(item.sku), "name": item.name, "total": item.price * item.quantity}


@app.get("/search")
async def search(
    q: Annotated[str, Query(max_length=50)],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
    sort: SortKey = SortKey.relevance,
    tags: Annotated[list[str], Query()] = [],
):
    return {"q": q, "limit": limit, "offset": offset, "sort": sort, "tags": tags}
