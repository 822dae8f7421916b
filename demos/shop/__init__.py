"""A small shop on a tornpool pool, with a live dashboard of the pool.

* :mod:`demos.shop.schema` -- the tables and seed products;
* :mod:`demos.shop.store` -- the queries (an order is one transaction; the
  export streams);
* :mod:`demos.shop.pages` -- HTML pages and forms, in both handler styles;
* :mod:`demos.shop.api` -- the JSON API, the CSV export, the load controls;
* :mod:`demos.shop.monitor` -- frames and events read off the pool;
* :mod:`demos.shop.controls` -- load bursts, held connections, kills;
* :mod:`demos.shop.dashboard` -- the dashboard page and its event stream;
* :mod:`demos.shop.web` -- :class:`Shop` and :func:`make_app`.

Run it with ``python -m demos.app`` (see ``docs/demo.md``).
"""

from demos.shop.web import Shop, make_app

__all__ = ["Shop", "make_app"]
