"""Request parameter types the routers share: row ids, and query fields where blank means absent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BeforeValidator, Field, TypeAdapter

MAX_ROW_ID = 2**63 - 1
"""The largest id a row can have (SQLite INTEGER, PostgreSQL bigint). A larger one cannot even be
looked up (the driver overflows), so it is refused as invalid (422) like 0 or -1."""

RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
"""An exchange's or a share's id, wherever a request carries one: path, query or JSON body."""

ExchangeId = Annotated[RowId, Path(description="Exchange id.")]
"""The {exchange_id} of a route's path."""

_ROW_IDS = TypeAdapter(list[RowId])


def parse_row_ids(text: str) -> list[int]:
    """`3,1,2` -> [1, 2, 3] (duplicates and empty parts dropped); ValueError when a part is not a RowId."""
    return sorted(set(_ROW_IDS.validate_python([part.strip() for part in text.split(",") if part.strip()])))


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


Blankable = BeforeValidator(_blank_is_none)
"""`?service=` (an empty form field) means no filter, not an empty match. Put constraints on the inner
type, `Annotated[Annotated[str, Field(max_length=64)] | None, Blankable, Query()]`: on the Query they
would also be applied to the None a blank becomes, and fail there (a 500)."""
