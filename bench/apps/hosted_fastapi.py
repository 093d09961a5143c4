"""bench/hosting.py's FastAPI app, the same under CovetPy (`--interface asgi`), uvicorn
and Granian: a plaintext GET, a JSON GET with a path parameter, a JSON POST echoed
through a pydantic model, written the idiomatic FastAPI way."""

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from hosted_common import PLAINTEXT, USERS

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    quantity: int
    tags: list[str]
    in_stock: bool


@app.get("/plaintext", response_class=PlainTextResponse)
async def plaintext():
    return PLAINTEXT


@app.get("/users/{user_id}")
async def user(user_id: int):
    found = USERS.get(user_id)
    if found is None:
        raise HTTPException(status_code=404, detail="no such user")
    return found


@app.post("/echo")
async def echo(item: Item) -> Item:
    return item
