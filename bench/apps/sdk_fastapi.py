"""bench/sdk.py's FastAPI app (served by uvicorn and by Granian): the same two routes as
sdk_covet.py, a 10-field pydantic model body (sdk_pydantic.py) and typed query
parameters, written the idiomatic FastAPI way."""

from typing import Annotated

from fastapi import FastAPI, Query

from sdk_common import SortKey
from sdk_pydantic import Item

app = FastAPI()


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
