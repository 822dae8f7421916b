"""The shop's tables and the products it starts with.

Three InnoDB tables: ``product`` (stock is checked and decremented inside the
order transaction), ``customer_order`` (``order`` is a reserved word) and
``order_item``.  :func:`create` is idempotent: ``CREATE TABLE IF NOT EXISTS``
and ``INSERT IGNORE`` of the seed products by SKU.
"""

from __future__ import annotations

from tornpool import Pool

__all__ = ["TABLES", "SEED_PRODUCTS", "create"]

TABLES = (
    """CREATE TABLE IF NOT EXISTS product (
        id INT AUTO_INCREMENT PRIMARY KEY,
        sku VARCHAR(32) NOT NULL UNIQUE,
        name VARCHAR(120) NOT NULL,
        price_cents INT UNSIGNED NOT NULL,
        stock INT UNSIGNED NOT NULL,
        created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
    ) ENGINE=InnoDB CHARACTER SET utf8mb4""",
    """CREATE TABLE IF NOT EXISTS customer_order (
        id INT AUTO_INCREMENT PRIMARY KEY,
        customer VARCHAR(80) NOT NULL,
        total_cents INT UNSIGNED NOT NULL,
        created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
    ) ENGINE=InnoDB CHARACTER SET utf8mb4""",
    """CREATE TABLE IF NOT EXISTS order_item (
        order_id INT NOT NULL,
        product_id INT NOT NULL,
        qty INT UNSIGNED NOT NULL,
        price_cents INT UNSIGNED NOT NULL,
        PRIMARY KEY (order_id, product_id),
        FOREIGN KEY (order_id) REFERENCES customer_order (id) ON DELETE CASCADE,
        FOREIGN KEY (product_id) REFERENCES product (id)
    ) ENGINE=InnoDB CHARACTER SET utf8mb4""",
)

#: (sku, name, price in cents, stock)
SEED_PRODUCTS = (
    ("MUG-01", "Tornado mug", 1250, 40),
    ("TEE-M", "Pool party T-shirt (M)", 1900, 25),
    ("TEE-L", "Pool party T-shirt (L)", 1900, 25),
    ("STK-10", "Sticker pack, 10 pieces", 400, 200),
    ("BOOK-1", "Async MySQL, a field guide", 3400, 12),
    ("CABLE-3", "Patch cable, 3 m", 650, 80),
)


async def create(pool: Pool) -> None:
    """Create the tables and the seed products where missing.

    :raises tornpool.MySQLError: the server refused a statement.
    """
    for statement in TABLES:
        await pool.execute(statement)
    await pool.executemany(
        "INSERT IGNORE INTO product (sku, name, price_cents, stock) VALUES (%s, %s, %s, %s)",
        SEED_PRODUCTS,
    )
