"""The admin API from the terminal: an HTTP client and what the CLI commands share.

``bridge numbers|agents|calls …`` talk to a running bridge's ``/admin`` API (never to
SQLite behind its back), so the routing table of the running process changes at once.
The admin token comes from ``BRIDGE_ADMIN_TOKEN`` or the config file, never from the
command line (where other users could read it in the process list).

Output is a rich table by default and the API's own JSON with ``--json``.  A failed
request prints one line on stderr naming the field and the HTTP status, and the command
exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bridge.config import load_config
from bridge.errors import BridgeError, InputError, UpstreamError

DEFAULT_TIMEOUT_S = 60.0  # an import makes several upstream calls


class AdminClient:
    """Synchronous client of ``/admin``; errors become InputError (4xx) / UpstreamError."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {token}", "accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, "/admin" + path, json=body, params=query or None)
        except httpx.HTTPError as e:
            raise UpstreamError(
                f"cannot reach the bridge admin API at {self.base_url}: {type(e).__name__}: {e}"
            ) from None
        if response.is_success:
            return response.json()
        raise _error(response)

    # -- numbers

    def list_numbers(self) -> Any:
        return self.request("GET", "/numbers")

    def import_number(self, body: dict[str, Any]) -> Any:
        return self.request("POST", "/numbers", body=body)

    def get_number(self, number_or_id: str) -> Any:
        return self.request("GET", f"/numbers/{_seg(number_or_id)}")

    def update_number(self, number_or_id: str, changes: dict[str, Any]) -> Any:
        return self.request("PATCH", f"/numbers/{_seg(number_or_id)}", body=changes)

    def delete_number(self, number_or_id: str, restore_voice_url: str | None = None) -> Any:
        return self.request(
            "DELETE",
            f"/numbers/{_seg(number_or_id)}",
            params={"restore_voice_url": restore_voice_url},
        )

    # -- agents

    def list_agents(self) -> Any:
        return self.request("GET", "/agents")

    def create_agent(self, body: dict[str, Any]) -> Any:
        return self.request("POST", "/agents", body=body)

    # -- calls

    def list_calls(self, **filters: Any) -> Any:
        return self.request("GET", "/calls", params=filters)

    def get_call(self, call_sid: str) -> Any:
        return self.request("GET", f"/calls/{_seg(call_sid)}")

    def hangup(self, call_sid: str) -> Any:
        return self.request("POST", f"/calls/{_seg(call_sid)}/hangup")

    def transfer(self, call_sid: str, to: str) -> Any:
        return self.request("POST", f"/calls/{_seg(call_sid)}/transfer", body={"to": to})

    def place_call(self, body: dict[str, Any]) -> Any:
        return self.request("POST", "/calls", body=body)

    # -- instances

    def list_instances(self) -> Any:
        return self.request("GET", "/instances")


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error(response: httpx.Response) -> BridgeError:
    """The admin API's error body as one BridgeError (the line the user will read)."""
    status = response.status_code
    try:
        info = response.json()["error"]
        field = info.get("field")
        message = str(info.get("message"))
    except (ValueError, KeyError, TypeError, AttributeError):
        field, message = None, response.text.strip()[:300] or response.reason_phrase
    if 400 <= status < 500:
        return InputError(field or "request", f"{message} (HTTP {status})", status)
    return UpstreamError(f"{field + ': ' if field else ''}{message}", status=status)


# ---------------------------------------------------------------------------- commands


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--json``, for every subcommand that talks to the admin API."""
    parser.add_argument(
        "--url",
        default=None,
        help="the bridge's base URL (default: from the config, http://127.0.0.1:8080)",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def client_from_args(args: argparse.Namespace) -> AdminClient:
    cfg = load_config(args.config)
    token = cfg.admin.token
    if not token:
        raise InputError(
            "BRIDGE_ADMIN_TOKEN",
            "is not set; the admin token is needed (environment or [admin] token)",
            status=401,
        )
    url = args.url
    if url is None:
        host = cfg.server.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        url = f"http://{host}:{cfg.server.port}"
    return AdminClient(url, token)


def run_command(
    args: argparse.Namespace,
    action: Callable[[AdminClient], Any],
    show: Callable[[Any], None],
    flags: Mapping[str, str] | None = None,
) -> int:
    """Run one admin request; print JSON or a table; errors as one line on stderr.

    ``flags``: the API's words in an error and the CLI's for them (see :func:`cli_words`).
    """
    try:
        with client_from_args(args) as client:
            data = action(client)
    except BridgeError as e:
        print(f"bridge {args.command}: error: {cli_words(str(e), flags or {})}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        show(data)
    return 0


def cli_words(message: str, flags: Mapping[str, str]) -> str:
    """An admin API error in the CLI's words: each key of ``flags`` (an API field name
    such as ``twilio_number_sid``, or a phrase such as ``set configure_twilio to false``)
    is replaced, whole words only, by what the CLI user types instead (``--twilio-sid``,
    ``pass --no-twilio``).  Keys are tried longest first, so a phrase wins over a field
    it contains.  The API keeps its own words: this is only how the CLI prints them."""
    for key in sorted(flags, key=len, reverse=True):
        message = re.sub(rf"(?<![\w-]){re.escape(key)}(?![\w-])", flags[key], message)
    return message


def console() -> Console:
    # sys.stdout resolved at call time (tests capture it).  Piped output gets a wide
    # console so ids are not folded across lines for grep and friends.
    out = sys.stdout
    return Console(file=out, width=None if out.isatty() else 200)


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    ids: Sequence[str] = (),
) -> None:
    """A table; the ``ids`` columns are never wrapped (copy-pasteable identifiers)."""
    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold", no_wrap=c in ids)
    for row in rows:
        t.add_row(*(cell(v) for v in row))
    console().print(t)


def fields(title: str, data: dict[str, Any], keys: Sequence[str] | None = None) -> None:
    """One record as a two-column table."""
    t = Table(title=title, show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for k in keys or list(data):
        t.add_row(k, cell(data.get(k)))
    console().print(t)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True) if value else "-"
    return str(value)


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
