"""Admin endpoints of webhook deliveries (mounted in the admin API, so behind its token).

``GET /admin/webhooks/deliveries`` (``state``, ``call_sid``, ``limit``, ``cursor``: the
paging of ``/admin/calls``) and ``POST /admin/webhooks/deliveries/{id}/retry`` (due
now, whatever its state; a delivery past its retry period gets one more attempt).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bridge.admin.decode import check_unknown_params, query_int, query_str
from bridge.errors import InputError
from bridge.http import json_response
from bridge.store import Store
from bridge.store.deliveries import DELIVERY_STATES, DeliveryState
from bridge.store.store import MAX_PAGE

STATE_PATTERN: Final = "|".join(DELIVERY_STATES)
CALL_SID_PATTERN: Final = r"[A-Za-z0-9_\-]{1,64}"


class DeliveryEndpoints:
    def __init__(self, store: Store, wake: Callable[[], None] | None = None):
        self._store = store
        self._wake = wake

    async def list_deliveries(self, request: Request) -> Response:
        q = request.query_params
        check_unknown_params(q, ("state", "call_sid", "limit", "cursor"))
        state = cast(DeliveryState | None, query_str(q, "state", STATE_PATTERN))
        page = await asyncio.to_thread(
            self._store.list_deliveries,
            state=state,
            call_sid=query_str(q, "call_sid", CALL_SID_PATTERN),
            limit=query_int(q, "limit", 50, 1, MAX_PAGE),
            cursor=query_str(q, "cursor"),
        )
        return json_response(page)

    async def retry(self, request: Request) -> Response:
        check_unknown_params(request.query_params, ())
        delivery_id = request.path_params["id"]
        rec = await asyncio.to_thread(self._store.retry_delivery, delivery_id)
        if rec is None:
            raise InputError("id", f"no webhook delivery {delivery_id!r}", status=404)
        if self._wake is not None:
            self._wake()
        return json_response(rec)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/webhooks/deliveries", self.list_deliveries, methods=["GET"]),
            Route("/webhooks/deliveries/{id}/retry", self.retry, methods=["POST"]),
        ]


def webhook_admin_routes(store: Store, wake: Callable[[], None] | None = None) -> list[BaseRoute]:
    """The routes to add to the admin API (``admin_routes(..., extra_routes=...)``)."""
    return DeliveryEndpoints(store, wake).routes()
