"""bench/sdk.py's workloads, shared by its two apps (sdk_covet.py, sdk_fastapi.py), the
harness that checks their answers, and bench/sdk_features.py: the enums the models and
parameters use, the request each workload sends and the answer it must get. Standard
library only (the harness runs on any python3)."""

import enum
import json

ITEM_BODY = json.dumps({
    "name": "Cordless drill",
    "sku": "6f1c2a9e-3b7d-4c1e-9a5f-2d8b7e4c0a13",
    "price": 12.5,
    "quantity": 4,
    "in_stock": True,
    "tags": ["tools", "garden", "sale"],
    "category": "hardware",
    "created_at": "2026-01-15T10:30:00Z",
    "dimensions": {"width": 10.0, "height": 4.5, "depth": 2.0},
    "description": "A sturdy drill for everyday use.",
}, separators=(",", ":")).encode()
#: What POST /items answers to ITEM_BODY: the id, the name and price x quantity.
ITEM_ANSWER = {"id": "6f1c2a9e-3b7d-4c1e-9a5f-2d8b7e4c0a13", "name": "Cordless drill", "total": 50.0}

SEARCH_PATH = "/search?q=lamp&limit=20&offset=0&sort=price&tags=a&tags=b"
#: What GET SEARCH_PATH answers: the parameters as bound.
SEARCH_ANSWER = {"q": "lamp", "limit": 20, "offset": 0, "sort": "price", "tags": ["a", "b"]}


class Category(str, enum.Enum):
    hardware = "hardware"
    garden = "garden"
    kitchen = "kitchen"


class SortKey(str, enum.Enum):
    relevance = "relevance"
    price = "price"
    newest = "newest"
