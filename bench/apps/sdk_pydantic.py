"""The pydantic model of bench/sdk.py's POST /items body (the msgspec Struct's twin in
sdk_covet.py), for the FastAPI app and bench/sdk_features.py's pydantic-body rows."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from sdk_common import Category


class Dimensions(BaseModel):
    width: float
    height: float
    depth: float


class Item(BaseModel):
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
