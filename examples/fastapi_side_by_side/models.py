"""The pydantic models both versions share: moving to pagi-tools keeps them as they are."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    price: float = Field(gt=0)
    tags: list[str] = Field(default_factory=list, max_length=5)


class Item(ItemIn):
    id: int
