"""The shop's queries: products, orders (one transaction each), the export.

Every function takes the :class:`tornpool.Pool` and validates its input
first, raising :class:`InvalidInput` before anything reaches the server.
Money is integer cents.  Rows come back as plain dicts ready for JSON or a
template.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import tornpool
from tornpool import Pool

__all__ = [
    "ShopError", "InvalidInput", "NotFound", "OutOfStock", "DuplicateSku",
    "list_products", "get_product", "add_product", "place_order", "get_order",
    "recent_orders", "export_rows", "EXPORT_COLUMNS", "parse_cents",
]

SKU_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,31}$")
MAX_QTY = 1000
MAX_ITEMS = 50


class ShopError(Exception):
    """A request the shop refuses; ``status`` is the HTTP status to answer."""

    status = 400


class InvalidInput(ShopError, ValueError):
    """A field is missing, of the wrong type, or out of range."""


class NotFound(ShopError, LookupError):
    """No product or order with that id."""

    status = 404


class OutOfStock(ShopError):
    """An order asks for more than is in stock (nothing was changed)."""

    status = 409


class DuplicateSku(ShopError):
    """A product with that SKU exists already."""

    status = 409


def _text(value: Any, field: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field}: a non-empty string is required")
    text = value.strip()
    if len(text) > max_len:
        raise InvalidInput(f"{field}: at most {max_len} characters")
    return text


def _count(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field}: a whole number from {low} to {high} is required")
    return value


def parse_cents(value: Any, field: str = "price") -> int:
    """``12.50``, ``"12.50"`` or ``1250`` cents (an int) -> 1250.

    :raises InvalidInput: not a price between 0.01 and 100000.00.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        cents = value
    elif isinstance(value, (str, float)):
        match = re.fullmatch(r"\s*(\d{1,6})(?:\.(\d{1,2}))?\s*", str(value))
        if not match:
            raise InvalidInput(f"{field}: a price like 12.50 is required")
        cents = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    else:
        raise InvalidInput(f"{field}: a price like 12.50 is required")
    if not 1 <= cents <= 10_000_000:
        raise InvalidInput(f"{field}: from 0.01 to 100000.00")
    return cents


def _iso(value: Any) -> Any:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime.datetime) else value


PRODUCT_COLUMNS = "id, sku, name, price_cents, stock, created"


def _product(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created": _iso(row["created"])}


async def list_products(pool: Pool) -> list[dict[str, Any]]:
    """Every product, by name."""
    cur = await pool.execute(f"SELECT {PRODUCT_COLUMNS} FROM product ORDER BY name, id",
                             cursor=tornpool.DictCursor)
    return [_product(row) for row in cur.fetchall()]


async def get_product(pool: Pool, product_id: Any) -> dict[str, Any]:
    """:raises NotFound: no such product."""
    pid = _count(product_id, "product_id", 1, 2**31 - 1)
    cur = await pool.execute(f"SELECT {PRODUCT_COLUMNS} FROM product WHERE id = %s", (pid,),
                             cursor=tornpool.DictCursor)
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no product {pid}")
    return _product(row)


async def add_product(pool: Pool, sku: Any, name: Any, price: Any, stock: Any) -> dict[str, Any]:
    """Insert a product; resolves to it as stored.

    :raises InvalidInput: a bad field.
    :raises DuplicateSku: the SKU is taken.
    """
    sku_ = _text(sku, "sku", 32).upper()
    if not SKU_RE.match(sku_):
        raise InvalidInput("sku: letters, digits and dashes, like MUG-02")
    values = (sku_, _text(name, "name", 120), parse_cents(price), _count(stock, "stock", 0, 1_000_000))
    try:
        cur = await pool.execute(
            "INSERT INTO product (sku, name, price_cents, stock) VALUES (%s, %s, %s, %s)", values)
    except tornpool.IntegrityError as exc:
        raise DuplicateSku(f"sku {sku_} exists already") from exc
    return await get_product(pool, cur.lastrowid)


def _items(items: Any) -> dict[int, int]:
    """``[{"product_id": 1, "qty": 2}, ...]`` -> ``{1: 2}`` (quantities of a
    product listed twice are added)."""
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)) or not items:
        raise InvalidInput("items: a non-empty list of {product_id, qty} is required")
    if len(items) > MAX_ITEMS:
        raise InvalidInput(f"items: at most {MAX_ITEMS}")
    wanted: dict[int, int] = {}
    for item in items:
        if not isinstance(item, dict):
            raise InvalidInput("items: each item is an object {product_id, qty}")
        pid = _count(item.get("product_id"), "product_id", 1, 2**31 - 1)
        wanted[pid] = wanted.get(pid, 0) + _count(item.get("qty"), "qty", 1, MAX_QTY)
    return wanted


async def place_order(pool: Pool, customer: Any, items: Any) -> dict[str, Any]:
    """Check and take the stock, record the order and its items: one
    transaction, so a refused order changes nothing.  Resolves to the order.

    :raises InvalidInput: a bad field.
    :raises NotFound: an unknown product.
    :raises OutOfStock: not enough of a product (nothing was changed).
    """
    who = _text(customer, "customer", 80)
    wanted = _items(items)
    async with pool.transaction() as tx:
        # Lock the rows first: two orders for the last mug cannot both pass.
        cur = await tx.execute(
            "SELECT id, name, price_cents, stock FROM product WHERE id IN %s FOR UPDATE",
            (tuple(sorted(wanted)),))
        found = {row[0]: row for row in cur.fetchall()}
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise NotFound(f"no product {missing[0]}")
        for pid, qty in wanted.items():
            _, name, _, stock = found[pid]
            if stock < qty:
                raise OutOfStock(f"{name}: {qty} wanted, {stock} in stock")
        total = sum(found[pid][2] * qty for pid, qty in wanted.items())
        cur = await tx.execute("INSERT INTO customer_order (customer, total_cents) VALUES (%s, %s)",
                               (who, total))
        order_id = cur.lastrowid
        await tx.executemany(
            "INSERT INTO order_item (order_id, product_id, qty, price_cents) VALUES (%s, %s, %s, %s)",
            [(order_id, pid, qty, found[pid][2]) for pid, qty in sorted(wanted.items())])
        for pid, qty in wanted.items():
            await tx.execute("UPDATE product SET stock = stock - %s WHERE id = %s", (qty, pid))
    return await get_order(pool, order_id)


async def get_order(pool: Pool, order_id: Any) -> dict[str, Any]:
    """An order with its items.

    :raises NotFound: no such order.
    """
    oid = _count(order_id, "order_id", 1, 2**31 - 1)
    cur = await pool.execute(
        "SELECT id, customer, total_cents, created FROM customer_order WHERE id = %s", (oid,),
        cursor=tornpool.DictCursor)
    order = cur.fetchone()
    if order is None:
        raise NotFound(f"no order {oid}")
    cur = await pool.execute(
        "SELECT i.product_id, p.sku, p.name, i.qty, i.price_cents FROM order_item i "
        "JOIN product p ON p.id = i.product_id WHERE i.order_id = %s ORDER BY p.name", (oid,),
        cursor=tornpool.DictCursor)
    return {**order, "created": _iso(order["created"]), "items": list(cur.fetchall())}


async def recent_orders(pool: Pool, limit: Any = 20) -> list[dict[str, Any]]:
    """The newest orders (``limit``: 1 to 500), each with its number of items.

    :raises InvalidInput: a bad ``limit``.
    """
    cur = await pool.execute(
        "SELECT o.id, o.customer, o.total_cents, o.created, SUM(i.qty) AS items "
        "FROM customer_order o JOIN order_item i ON i.order_id = o.id "
        "GROUP BY o.id ORDER BY o.id DESC LIMIT %s", (_count(limit, "limit", 1, 500),),
        cursor=tornpool.DictCursor)
    return [{**row, "created": _iso(row["created"]), "items": int(row["items"])}
            for row in cur.fetchall()]


#: The export's columns, in order.
EXPORT_COLUMNS = ("order_id", "created", "customer", "sku", "qty", "price_cents")


async def export_rows(pool: Pool) -> AsyncIterator[tuple[Any, ...]]:
    """Every order item, oldest first, streamed from the server in batches
    (an ``SSCursor``: constant memory however many orders there are).  The
    connection is held until the generator finishes or is closed."""
    async with pool.acquire() as conn:
        cur = await conn.execute(
            "SELECT o.id, o.created, o.customer, p.sku, i.qty, i.price_cents "
            "FROM customer_order o JOIN order_item i ON i.order_id = o.id "
            "JOIN product p ON p.id = i.product_id ORDER BY o.id, p.sku",
            cursor=tornpool.SSCursor)
        async with cur:
            async for row in cur:
                yield row
