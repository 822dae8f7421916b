"""What every handler of the shop shares: the shop, its pool, errors as JSON."""

from __future__ import annotations

import json
from http.client import responses
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tornado import web

from tornpool import Pool

from demos.shop.store import InvalidInput, ShopError

if TYPE_CHECKING:  # pragma: no cover
    from demos.shop.web import Shop

__all__ = ["ShopHandler", "ApiHandler", "money"]


def money(cents: int) -> str:
    """1250 -> "12.50"."""
    return f"{cents // 100}.{cents % 100:02d}"


class ShopHandler(web.RequestHandler):
    """Base of the shop's handlers."""

    @property
    def shop(self) -> Shop:
        return self.application.settings["shop"]  # type: ignore[no-any-return]

    @property
    def pool(self) -> Pool:
        return self.shop.pool

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace["money"] = money
        return namespace


ExcInfo = tuple[type[BaseException], BaseException, TracebackType]


class ApiHandler(ShopHandler):
    """JSON in, JSON out.  A :class:`~demos.shop.store.ShopError` raised by a
    handler becomes ``{"error": message}`` with the error's status; anything
    else is a logged 500."""

    def check_xsrf_cookie(self) -> None:
        """The JSON API reads no cookies, so there is no session to forge."""

    def json_body(self) -> dict[str, Any]:
        """The request's JSON object, or its form arguments when it has none.

        :raises InvalidInput: a body that is not a JSON object.
        """
        if not self.request.body:
            return {}
        if self.request.headers.get("Content-Type", "").startswith("application/json"):
            try:
                value = json.loads(self.request.body)
            except ValueError as exc:
                raise InvalidInput(f"the body is not JSON: {exc}") from None
            if not isinstance(value, dict):
                raise InvalidInput("the body must be a JSON object")
            return value
        return {k: self.get_body_argument(k) for k in self.request.body_arguments}

    def send_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(value, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info: ExcInfo | None = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        if isinstance(exc, ShopError):
            self.set_status(exc.status)
            message = str(exc)
        else:
            message = responses.get(status_code, "error")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": message}))

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        if isinstance(value, ShopError):
            return  # the client's mistake, answered with 4xx: nothing to log
        super().log_exception(typ, value, tb)
