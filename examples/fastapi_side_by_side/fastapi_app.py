"""The API as a FastAPI app: the starting point. Serve it with ``--interface asgi``.

``uv run pagi-server examples/fastapi_side_by_side/fastapi_app.py --interface asgi``
"""

from __future__ import annotations

import os
import sys

from fastapi import FastAPI, HTTPException, Query, Response

sys.path.insert(0, os.path.dirname(__file__))  # run as a file: find the shared models
from models import Item, ItemIn

app = FastAPI(title="Items")
ITEMS: dict[int, Item] = {}


@app.get("/items")
async def list_items(max_price: float | None = Query(default=None, gt=0)) -> list[Item]:
    return [i for i in ITEMS.values() if max_price is None or i.price <= max_price]


@app.post("/items", status_code=201)
async def create_item(item: ItemIn) -> Item:
    created = Item(id=max(ITEMS, default=0) + 1, **item.model_dump())
    ITEMS[created.id] = created
    return created


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> Item:
    if item_id not in ITEMS:
        raise HTTPException(404, "Item not found")
    return ITEMS[item_id]


@app.delete("/items/{item_id}", status_code=204)
async def delete_item(item_id: int) -> Response:
    if ITEMS.pop(item_id, None) is None:
        raise HTTPException(404, "Item not found")
    return Response(status_code=204)
