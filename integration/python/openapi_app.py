"""The app of test_openapi_docs.py: typed handlers across two tags, a deprecated one, a
route that requires a token and one left out of the document."""

from __future__ import annotations

from typing import Annotated

import msgspec

from covet import Covet, Header, Query

app = Covet("openapiapp", title="Shop API", version="1.2.3", description="A small shop.")


class Item(msgspec.Struct):
    name: str
    price: float


@app.get("/items/{item_id:int}", tags=["items"])
async def read_item(item_id: int, q: Annotated[str | None, Query(max_length=20)] = None) -> Item:
    """One item by its number."""
    return Item(name=q or "thing", price=item_id * 1.5)


@app.post("/items", tags=["items"], status_code=201)
async def create_item(item: Item) -> Item:
    return item


@app.get("/legacy/search", tags=["items"], deprecated=True)
async def legacy_search(term: str = "") -> list[Item]:
    return []


@app.get("/admin/stats", tags=["admin"], auth=True, roles=["admin"])
async def admin_stats(x_trace: Annotated[str | None, Header()] = None) -> dict[str, int]:
    return {"items": 1}


@app.get("/ready", include_in_schema=False)
async def ready() -> str:
    return "ready"
