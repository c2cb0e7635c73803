"""The operator console under ``/admin/ui``: server-rendered pages over the admin service.

Mounted by :func:`console_routes` only when the admin API is enabled (an admin token is
set).  Every page reads and changes through the same
:class:`~bridge.admin.service.Provisioning` as the admin API, so the two cannot
disagree; forms are decoded into the API's own request Structs (:mod:`.forms`).

Security, in one place:

* sign-in exchanges the admin token (a POST body, never a URL) for a signed session
  cookie (:mod:`.session`): ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the
  public URL is https, expiring; failed sign-ins count against the same per-address
  throttle as the API's bearer checks (:class:`~bridge.admin.throttle.FailureThrottle`);
* every state-changing request is a POST whose form carries the session's CSRF token;
  without a session it gets 401, with a wrong token 403, and nothing changes;
* pages get a strict Content-Security-Policy (scripts and styles from ``static/``
  only), ``no-store`` caching and no referrer; the token is never rendered or logged.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, quote

import jinja2
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import bridge
from bridge.admin.routes import recording_response
from bridge.admin.service import Provisioning
from bridge.admin.throttle import FailureThrottle, client_key
from bridge.call.registry import LiveCalls
from bridge.config import Config
from bridge.console import forms, present
from bridge.console.history import REASONS, STATUSES, history_page, parse_query
from bridge.console.live import LiveFeed
from bridge.console.session import COOKIE, ConsoleSessions, Session
from bridge.errors import BridgeError, InputError, PartialFailure, UpstreamError
from bridge.log import log_event
from bridge.metrics import Metrics
from bridge.ops.health import security_warnings
from bridge.ops.service import Operations
from bridge.store import CallRecord
from bridge.store.store import MAX_PAGE

logger = logging.getLogger("bridge.console")

PREFIX: Final = "/admin/ui"
MAX_FORM_BYTES: Final = 64 * 1024
_HERE = Path(__file__).parent
_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
NOTICES: Final[dict[str, str]] = {
    "hangup": "Hang-up sent to call {sid}. It leaves the list when the call has ended.",
    "imported": "Number {number} imported.",
    "assigned": "Number {number} updated.",
    "deleted": "Number {number} deleted.",
    "agent_created": "Agent {name} created.",
    "signed_out": "You are signed out.",
}

Handler = Callable[[Request, Session], Awaitable[Response]]
Action = Callable[[Request, Session, dict[str, str]], Awaitable[Response]]


class SecurityHeaders:
    """Headers on every console response (static files included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = "/static/" in scope.get("path", "")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", _CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _safe_next(raw: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    bad = ("//", "\\", "\r", "\n", "\t")
    if raw and raw.startswith(f"{PREFIX}/") and not any(b in raw for b in bad):
        return raw
    return f"{PREFIX}/live"


class Console:
    def __init__(
        self,
        config: Config,
        service: Provisioning,
        calls: LiveCalls,
        ops: Operations,
        metrics: Metrics,
        sessions: ConsoleSessions,
        throttle: FailureThrottle,
    ) -> None:
        self.config = config
        self.svc = service
        self.calls = calls
        self.ops = ops
        self.metrics = metrics
        self.sessions = sessions
        self.throttle = throttle
        self.secure_cookie = (config.public_url or "").startswith("https://")
        store = ops.services.store
        # This process's id among the instances sharing the store (None: no store).
        self.instance = store.instance if store is not None else None
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.globals.update(
            prefix=PREFIX,
            version=bridge.__version__,
            when=present.when,
            duration=present.duration,
            ago=present.ago,
            mask=present.mask_number,
            reason_words=present.end_reason_words,
            status_words=present.STATUS_WORDS,
            tone=present.outcome_tone,
        )

    # ------------------------------------------------------------------ plumbing

    def render(
        self,
        name: str,
        session: Session | None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **ctx: Any,
    ) -> HTMLResponse:
        ctx.setdefault("notice", None)
        ctx.setdefault("error", None)
        ctx.setdefault("active", "")
        csrf = self.sessions.csrf(session) if session is not None else ""
        body = self.env.get_template(name).render(csrf=csrf, signed_in=session is not None, **ctx)
        return HTMLResponse(body, status, headers)

    def _notice(self, request: Request) -> str | None:
        q = request.query_params
        template = NOTICES.get(q.get("notice", ""))
        if template is None:
            return None
        return template.format(
            sid=q.get("sid", "")[:64], number=q.get("number", "")[:20], name=q.get("name", "")[:200]
        )

    def _refuse(self, request: Request, status: int, reason: str, message: str) -> Response:
        log_event(
            logger,
            "console.refused",
            logging.WARNING,
            reason=reason,
            method=request.method,
            path=request.url.path,
            client=client_key(request.client.host if request.client else None),
        )
        return self.render("error.html", None, status=status, title="Not allowed", message=message)

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A GET page: signed-in only, else to the sign-in page and back."""

        async def guarded(request: Request) -> Response:
            s = self.sessions.check(request.cookies.get(COOKIE))
            if s is None:
                target = quote(request.url.path, safe="/")
                return RedirectResponse(f"{PREFIX}/sign-in?next={target}", 303)
            return await handler(request, s)

        return guarded

    def action(self, handler: Action) -> Callable[[Request], Awaitable[Response]]:
        """A POST: signed-in, with the session's CSRF token in the form; else refused."""

        async def guarded(request: Request) -> Response:
            s = self.sessions.check(request.cookies.get(COOKIE))
            if s is None:
                return self._refuse(
                    request, 401, "no_session", "Your session has ended. Sign in again."
                )
            try:
                form = await read_form(request)
            except InputError as e:
                return self._refuse(request, e.status, "bad_form", f"The form was refused: {e}")
            if not self.sessions.csrf_ok(s, form.get("csrf")):
                return self._refuse(
                    request,
                    403,
                    "csrf",
                    "This form has expired or did not come from this console. "
                    "Go back, reload the page and try again.",
                )
            return await handler(request, s, form)

        return guarded

    # ------------------------------------------------------------------ sign-in / out

    async def root(self, request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/live", 303)

    async def sign_in_page(self, request: Request) -> Response:
        target = _safe_next(request.query_params.get("next"))
        if self.sessions.check(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse(target, 303)
        return self.render("sign_in.html", None, next=target, notice=self._notice(request))

    async def sign_in(self, request: Request) -> Response:
        key = client_key(request.client.host if request.client else None)
        wait = self.throttle.retry_after(key)
        if wait is not None:
            self.metrics.admin_auth_throttled_total.inc()
            seconds = max(1, math.ceil(wait))
            log_event(logger, "console.sign_in_throttled", logging.WARNING, client=key)
            return self.render(
                "sign_in.html",
                None,
                status=429,
                headers={"Retry-After": str(seconds)},
                next=f"{PREFIX}/live",
                error=f"Too many failed sign-ins from this address. Try again in {seconds} s.",
            )
        try:
            form = await read_form(request)
        except InputError as e:
            return self._refuse(request, e.status, "bad_form", f"The form was refused: {e}")
        target = _safe_next(form.get("next"))
        if not self.sessions.token_matches(form.get("token", "")):
            self.metrics.admin_auth_failures_total.inc()
            blocked = self.throttle.failed(key)
            log_event(
                logger,
                "console.sign_in_failed",
                logging.WARNING,
                client=key,
                had_token=bool(form.get("token")),
                throttled_now=blocked,
            )
            return self.render(
                "sign_in.html",
                None,
                status=401,
                next=target,
                field_error="That is not this bridge's admin token.",
            )
        cookie, s = self.sessions.issue()
        log_event(logger, "console.signed_in", client=key, expires_at=s.expires_at)
        response = RedirectResponse(target, 303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(self.sessions.ttl_s),
            path=PREFIX,
            secure=self.secure_cookie,
            httponly=True,
            samesite="strict",
        )
        return response

    async def sign_out(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        self.sessions.revoke(s)
        log_event(logger, "console.signed_out")
        response = RedirectResponse(f"{PREFIX}/sign-in?notice=signed_out", 303)
        response.delete_cookie(
            COOKIE, path=PREFIX, secure=self.secure_cookie, httponly=True, samesite="strict"
        )
        return response

    # ------------------------------------------------------------------ live calls

    async def live(self, request: Request, s: Session) -> Response:
        reveal = request.query_params.get("reveal") == "1"
        return self.render(
            "live.html", s, active="live", reveal=reveal, notice=self._notice(request)
        )

    async def live_events(self, request: Request) -> Response:
        s = self.sessions.check(request.cookies.get(COOKIE))
        if s is None:
            return self._refuse(request, 401, "no_session", "Sign in to follow live calls.")
        feed = LiveFeed(
            self.calls,
            self._live_records,
            lambda: self.ops.drain.draining,
            here=self.instance,
            agent_names=self._agent_names,
            gone=request.is_disconnected,
            reveal=request.query_params.get("reveal") == "1",
        )
        return StreamingResponse(
            feed.events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _live_records(self) -> list[CallRecord]:
        """What ``GET /admin/calls?live=1`` lists: the live calls of every instance."""
        page = await self.svc.list_calls(live=True, limit=MAX_PAGE)
        return page.items

    async def hangup(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        sid = request.path_params["sid"]
        try:
            await self.svc.hangup(sid)
        except BridgeError as e:
            status = e.status if isinstance(e, InputError) else 503
            errors = forms.FormErrors.of(e, ())
            return self.render(
                "live.html", s, status=status, active="live", reveal=False, error=errors.form
            )
        log_event(logger, "console.hangup", call_sid=sid)
        return RedirectResponse(f"{PREFIX}/live?notice=hangup&sid={quote(sid)}", 303)

    # ------------------------------------------------------------------ history, detail

    async def history(self, request: Request, s: Session) -> Response:
        try:
            q = parse_query(request.query_params)
        except InputError as e:
            values = {k: request.query_params.get(k, "") for k in ("number", "agent_id")}
            values.update({k: request.query_params.get(k, "") for k in ("outcome", "since")})
            values["until"] = request.query_params.get("until", "")
            return self.render(
                "history.html",
                s,
                status=400,
                active="history",
                values=values,
                field_errors={e.field: e.problem},
                result=None,
                statuses=STATUSES,
                reasons=REASONS,
                agents=self._known_agents(),
                agent_names={},
                query_string="",
            )
        records: list[CallRecord] = []
        cursor: str | None = None
        while True:
            page = await self.svc.list_calls(
                number=q.number, agent_id=q.agent_id, limit=MAX_PAGE, cursor=cursor
            )
            records.extend(page.items)
            cursor = page.next_cursor
            oldest = page.items[-1].started_at if page.items else None
            if cursor is None or len(records) > 5000:
                break
            if q.since is not None and oldest is not None and oldest < q.since:
                break
        result = history_page(records, q)
        filters = {k: v for k, v in q.form_values().items() if v}
        return self.render(
            "history.html",
            s,
            active="history",
            values=q.form_values(),
            field_errors={},
            result=result,
            statuses=STATUSES,
            reasons=REASONS,
            agents=self._known_agents(),
            agent_names=self._agent_names(),
            query_string="&".join(f"{k}={quote(v)}" for k, v in filters.items()),
        )

    def _agent_names(self) -> dict[str, str]:
        return {
            n.agent_id: n.agent_name for n in self.svc.list_numbers() if n.agent_id and n.agent_name
        }

    def _known_agents(self) -> list[str]:
        return sorted({n.agent_id for n in self.svc.list_numbers() if n.agent_id})

    async def call_detail(self, request: Request, s: Session) -> Response:
        sid = request.path_params["sid"]
        try:
            rec = await self.svc.get_call(sid)
        except InputError as e:
            return self.render(
                "error.html", s, status=e.status, title="No such call", message=e.problem
            )
        try:
            self.svc.recording_file(sid)
            recorded = True
        except InputError:
            recorded = False
        return self.render(
            "call.html",
            s,
            active="history",
            rec=rec,
            timeline=present.timeline(rec),
            live_here=self.calls.get(sid) is not None,
            lines=present.transcript_lines(rec.transcript),
            chart=present.latency_chart(rec.transcript),
            latency=present.latency_summary(rec.latency),
            stage_words=present.STAGE_WORDS,
            recorded=recorded,
        )

    async def call_recording(self, request: Request) -> Response:
        """The call's WAV for the page's audio player: the admin API's own response
        (Range, 206/416), behind the session cookie instead of the bearer token."""
        if self.sessions.check(request.cookies.get(COOKIE)) is None:
            return self._refuse(request, 401, "no_session", "Sign in to listen to recordings.")
        try:
            return recording_response(self.svc, request.path_params["sid"])
        except InputError as e:
            return Response(e.problem, e.status, media_type="text/plain; charset=utf-8")

    async def call_raw(self, request: Request, s: Session) -> Response:
        try:
            rec = await self.svc.get_call(request.path_params["sid"])
        except InputError as e:
            return Response(
                msgspec.json.encode({"error": {"field": e.field, "message": e.problem}}),
                e.status,
                media_type="application/json",
            )
        return Response(
            msgspec.json.format(msgspec.json.encode(rec)), media_type="application/json"
        )

    # ------------------------------------------------------------------ numbers, agents

    async def _numbers_page(
        self,
        s: Session,
        *,
        status: int = 200,
        notice: str | None = None,
        import_values: dict[str, str] | None = None,
        import_errors: forms.FormErrors | None = None,
        row_errors: dict[str, str] | None = None,
    ) -> Response:
        agents, agents_error = await self._agents()
        return self.render(
            "numbers.html",
            s,
            status=status,
            active="numbers",
            notice=notice,
            numbers=self.svc.list_numbers(),
            agents=agents,
            agents_error=agents_error,
            values=import_values or {"configure_twilio": "on"},
            errors=import_errors or forms.FormErrors(),
            row_errors=row_errors or {},
        )

    async def _agents(self) -> tuple[list[Any], str | None]:
        try:
            return await self.svc.list_agents(), None
        except BridgeError as e:
            return [], forms.FormErrors.of(e, ()).form

    async def numbers(self, request: Request, s: Session) -> Response:
        return await self._numbers_page(s, notice=self._notice(request))

    async def import_number(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        try:
            result = await self.svc.import_number(forms.import_number(form))
        except BridgeError as e:
            known = (*forms.IMPORT_TEXT, *forms.IMPORT_CHECKBOXES)
            return await self._numbers_page(
                s,
                status=_status_of(e),
                import_values=form,
                import_errors=forms.FormErrors.of(e, known),
            )
        number = quote(result.number.number)
        return RedirectResponse(f"{PREFIX}/numbers?notice=imported&number={number}", 303)

    async def assign_agent(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        number = request.path_params["id"]
        try:
            rec = await self.svc.update_number(number, forms.assign_agent(form))
        except BridgeError as e:
            errors = forms.FormErrors.of(e, ("agent_id",))
            message = errors.fields.get("agent_id") or errors.form or str(e)
            return await self._numbers_page(s, status=_status_of(e), row_errors={number: message})
        return RedirectResponse(f"{PREFIX}/numbers?notice=assigned&number={quote(rec.number)}", 303)

    async def delete_number(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        number = request.path_params["id"]
        try:
            result = await self.svc.delete_number(number)
        except BridgeError as e:
            errors = forms.FormErrors.of(e, ())
            return await self._numbers_page(
                s, status=_status_of(e), row_errors={number: errors.form or str(e)}
            )
        return RedirectResponse(
            f"{PREFIX}/numbers?notice=deleted&number={quote(result.number)}", 303
        )

    async def agents(self, request: Request, s: Session) -> Response:
        return await self._agents_page(s, notice=self._notice(request))

    async def _agents_page(
        self,
        s: Session,
        *,
        status: int = 200,
        notice: str | None = None,
        values: dict[str, str] | None = None,
        errors: forms.FormErrors | None = None,
    ) -> Response:
        agents, agents_error = await self._agents()
        used: dict[str, list[str]] = {}
        for n in self.svc.list_numbers():
            if n.agent_id:
                used.setdefault(n.agent_id, []).append(n.number)
        return self.render(
            "agents.html",
            s,
            status=status,
            active="agents",
            notice=notice,
            agents=agents,
            agents_error=agents_error,
            used=used,
            values=values or {"language": "en"},
            errors=errors or forms.FormErrors(),
        )

    async def create_agent(self, request: Request, s: Session, form: dict[str, str]) -> Response:
        try:
            info = await self.svc.create_agent(forms.create_agent(form))
        except BridgeError as e:
            return await self._agents_page(
                s,
                status=_status_of(e),
                values=form,
                errors=forms.FormErrors.of(e, forms.AGENT_TEXT),
            )
        return RedirectResponse(
            f"{PREFIX}/agents?notice=agent_created&name={quote(info.name)}", 303
        )

    # ------------------------------------------------------------------ system

    async def system(self, request: Request, s: Session) -> Response:
        ready = self.ops.readiness()
        try:
            instances, instances_error = await self.svc.list_instances(), None
        except BridgeError as e:
            instances, instances_error = [], forms.FormErrors.of(e, ()).form or str(e)
        return self.render(
            "system.html",
            s,
            active="system",
            ready=ready,
            warnings=security_warnings(self.config.twilio),
            draining=self.ops.drain.draining,
            live_calls=len(self.calls),
            config_items=list(present.config_items(self.config)),
            public_url=self.config.public_url,
            instances=instances,
            instances_error=instances_error,
            here=self.instance,
            now=time.time(),
        )

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.root, methods=["GET"]),
            Route("/sign-in", self.sign_in_page, methods=["GET"]),
            Route("/sign-in", self.sign_in, methods=["POST"]),
            Route("/sign-out", self.action(self.sign_out), methods=["POST"]),
            Route("/live", self.page(self.live), methods=["GET"]),
            Route("/live/events", self.live_events, methods=["GET"]),
            Route("/calls", self.page(self.history), methods=["GET"]),
            Route("/calls/{sid}", self.page(self.call_detail), methods=["GET"]),
            Route("/calls/{sid}/raw", self.page(self.call_raw), methods=["GET"]),
            Route("/calls/{sid}/recording", self.call_recording, methods=["GET"]),
            Route("/calls/{sid}/hangup", self.action(self.hangup), methods=["POST"]),
            Route("/numbers", self.page(self.numbers), methods=["GET"]),
            Route("/numbers", self.action(self.import_number), methods=["POST"]),
            Route("/numbers/{id}/agent", self.action(self.assign_agent), methods=["POST"]),
            Route("/numbers/{id}/delete", self.action(self.delete_number), methods=["POST"]),
            Route("/agents", self.page(self.agents), methods=["GET"]),
            Route("/agents", self.action(self.create_agent), methods=["POST"]),
            Route("/system", self.page(self.system), methods=["GET"]),
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ]


def _status_of(e: BridgeError) -> int:
    """The status the admin API would answer for ``e``."""
    if isinstance(e, PartialFailure):
        return _status_of(e.cause)
    if isinstance(e, InputError):
        return e.status
    return 502 if isinstance(e, UpstreamError) else 503


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body of at most MAX_FORM_BYTES, as a dict (last value wins)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise InputError("body", f"is larger than {MAX_FORM_BYTES} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    stream: AsyncIterator[bytes] = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise InputError("body", f"is larger than {MAX_FORM_BYTES} bytes", status=413)
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise InputError("body", "is not a readable form", status=400) from None
    return dict(pairs)


def console_routes(
    config: Config,
    service: Provisioning,
    calls: LiveCalls,
    ops: Operations,
    metrics: Metrics,
) -> list[BaseRoute]:
    """``[Mount("/admin/ui", …)]``, or nothing when the admin API is disabled (no token).

    Put these before the admin API's ``/admin`` mount: that one would take
    ``/admin/ui/...`` as an API path.
    """
    token = config.admin.token
    if not token:
        return []
    console = Console(
        config,
        service,
        calls,
        ops,
        metrics,
        ConsoleSessions(token),
        FailureThrottle(config.admin.auth_failures_per_minute),
    )
    app = Starlette(routes=console.routes())
    log_event(logger, "console.enabled", prefix=PREFIX)
    return [
        Route(PREFIX, console.root, methods=["GET"]),
        Mount(PREFIX, app=SecurityHeaders(app)),
    ]
