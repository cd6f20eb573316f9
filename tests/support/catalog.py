"""A FastAPI service whose OpenAPI document is known (its own /openapi.json), for checking the
inferred one against it (tests/integration/test_inferred_openapi.py). Run as a real process:

    python -m uvicorn tests.support.catalog:app --port P

Path and query parameters (uuid, integer, enum), request bodies with required, optional and
nullable fields, responses with enums, uuid/date-time/date/uri formats, lists, and several
statuses (200, 201, 204, 404, 422)."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import Enum

from fastapi import FastAPI, HTTPException, Query, Response
from pydantic import BaseModel, HttpUrl

app = FastAPI(title="catalog")


class Category(str, Enum):
    books = "books"
    music = "music"
    games = "games"


class OrderStatus(str, Enum):
    placed = "placed"
    shipped = "shipped"
    delivered = "delivered"


class ItemIn(BaseModel):
    name: str
    price: float
    category: Category
    stock: int = 0
    tags: list[str] = []
    description: str | None = None


class Item(BaseModel):
    id: uuid.UUID
    name: str
    price: float
    category: Category
    stock: int
    tags: list[str]
    description: str | None
    homepage: HttpUrl | None
    created_at: dt.datetime


class Order(BaseModel):
    id: int
    total: float
    placed_on: dt.date
    status: OrderStatus
    items: list[uuid.UUID]


class Problem(BaseModel):
    detail: str


_ITEMS: dict[uuid.UUID, Item] = {}
_CREATED = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


def _item(number: int, body: ItemIn | None = None) -> Item:
    body = body or ItemIn(
        name=f"item {number}",
        price=number + 0.5,
        category=list(Category)[number % 3],
        stock=number * 3,
        tags=[f"shelf{number}", f"aisle{number + 7}"][: number % 3],
        description=None if number % 2 else f"about item {number}",
    )
    return Item(
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"item-{number}-{body.name}"),
        homepage=None if number % 3 == 0 else HttpUrl(f"https://example.com/items/{number}"),
        created_at=_CREATED + dt.timedelta(minutes=number),
        **body.model_dump(),
    )


for _n in range(12):
    _stored = _item(_n)
    _ITEMS[_stored.id] = _stored


@app.get("/items", response_model=list[Item])
def list_items(limit: int = 10, category: Category | None = None) -> list[Item]:
    found = [item for item in _ITEMS.values() if category is None or item.category == category]
    return found[:limit]


@app.get("/items/{item_id}", response_model=Item, responses={404: {"model": Problem}})
def get_item(item_id: uuid.UUID) -> Item:
    if item_id not in _ITEMS:
        raise HTTPException(404, detail=f"no item {item_id}")
    return _ITEMS[item_id]


@app.post("/items", response_model=Item, status_code=201)
def create_item(body: ItemIn) -> Item:
    created = _item(len(_ITEMS) + 1, body)
    _ITEMS[created.id] = created
    return created


@app.delete("/items/{item_id}", status_code=204, responses={404: {"model": Problem}})
def delete_item(item_id: uuid.UUID) -> Response:
    if _ITEMS.pop(item_id, None) is None:
        raise HTTPException(404, detail=f"no item {item_id}")
    return Response(status_code=204)


@app.get("/users/{user_id}/orders", response_model=list[Order])
def user_orders(user_id: int, status: OrderStatus | None = Query(default=None)) -> list[Order]:
    orders = [
        Order(
            id=user_id * 100 + n,
            total=round(10.25 * (n + 1), 2),
            placed_on=dt.date(2026, 11, 1 + n),
            status=list(OrderStatus)[(user_id + n) % 3],
            items=list(_ITEMS)[: n + 1],
        )
        for n in range(3)
    ]
    return [order for order in orders if status is None or order.status == status]
