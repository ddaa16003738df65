"""The same API moved to pagi-tools: routes, the same pydantic models, the same JSON errors.

Each FastAPI feature the original uses, and what stands for it here:

* ``@app.get("/items/{item_id}")`` -> ``@router.get(...)`` taking a
  ``Request``; parameters come from ``request.path_params`` and
  ``request.query_params`` and are checked with pydantic's ``TypeAdapter``;
* a body parameter ``item: ItemIn`` -> ``ItemIn.model_validate(await request.json())``
  (with the body read as JSON first, so that JSON errors read as FastAPI's);
* the ``422`` for bad input -> ``invalid(...)``, the same
  ``{"detail": [{"type", "loc", "msg", ...}]}`` with ``loc`` starting at
  ``body``, ``query`` or ``path``;
* ``HTTPException(404, "Item not found")`` -> the same, answered as
  ``{"detail": ...}`` by the router's ``exception_handlers`` (which also
  answer the router's own 404 and 405 in JSON).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from pagi.tools import HTTPException, JSONResponse, Request, Response, Router

sys.path.insert(0, os.path.dirname(__file__))  # run as a file: find the shared models
from models import Item, ItemIn

ITEMS: dict[int, Item] = {}
ITEM_ID = TypeAdapter(int)
MAX_PRICE = TypeAdapter(Annotated[float, Field(gt=0)])


class Invalid(Exception):
    """Bad input: answered with a FastAPI-shaped ``422``."""

    def __init__(self, where: str, error: ValidationError, name: str | None = None) -> None:
        self.detail = [
            {**e, "loc": [where, *([name] if name else []), *e["loc"]]}
            for e in error.errors(include_url=False)
        ]


def check(adapter: TypeAdapter[Any], value: Any, where: str, name: str) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise Invalid(where, exc, name) from None


async def invalid(request: Request, exc: Invalid) -> Response:
    return JSONResponse({"detail": jsonable(exc.detail)}, status=422)


async def http_error(request: Request, exc: HTTPException) -> Response:
    return JSONResponse({"detail": exc.detail}, status=exc.status, headers=exc.headers)


def jsonable(value: Any) -> Any:
    """Error contexts may hold exceptions; show those as text, as FastAPI does."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


router = Router(exception_handlers={Invalid: invalid, 404: http_error, 405: http_error})


def find(request: Request) -> int:
    item_id = check(ITEM_ID, request.path_params["item_id"], "path", "item_id")
    if item_id not in ITEMS:
        raise HTTPException(404, "Item not found")
    return int(item_id)


@router.get("/items")
async def list_items(request: Request) -> Any:
    given = request.query_params.get("max_price")
    max_price = None if given is None else check(MAX_PRICE, given, "query", "max_price")
    return [i.model_dump() for i in ITEMS.values() if max_price is None or i.price <= max_price]


@router.post("/items")
async def create_item(request: Request) -> Response:
    body = await request.body()
    if not body:
        detail = [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
        return JSONResponse({"detail": detail}, status=422)
    try:
        data = json.loads(body)
    except ValueError as exc:  # not JSON (or not UTF-8): said the way FastAPI says it
        error = {"type": "json_invalid", "loc": ["body", getattr(exc, "pos", 0)]}
        reason = getattr(exc, "msg", str(exc))
        detail = [{**error, "msg": "JSON decode error", "input": {}, "ctx": {"error": reason}}]
        return JSONResponse({"detail": detail}, status=422)
    try:
        item = ItemIn.model_validate(data)
    except ValidationError as exc:
        raise Invalid("body", exc) from None
    created = Item(id=max(ITEMS, default=0) + 1, **item.model_dump())
    ITEMS[created.id] = created
    return JSONResponse(created.model_dump(), status=201)


@router.get("/items/{item_id}")
async def read_item(request: Request) -> Any:
    return ITEMS[find(request)].model_dump()


@router.delete("/items/{item_id}")
async def delete_item(request: Request) -> Response:
    del ITEMS[find(request)]
    return Response(status=204)


app = router
