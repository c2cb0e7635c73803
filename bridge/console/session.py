"""Console sign-in sessions and CSRF tokens: signed cookies, no server-side table.

Signing in with the admin token gives a cookie ``<expires>.<nonce>.<signature>``: an
HMAC-SHA256 under a key derived from the admin token.  Every bridge process (and, with
a shared token, every instance) can check it without asking anyone, and rotating the
admin token signs every session out.  The cookie never carries the token, and the
token cannot be recovered from it.

A form's CSRF token is an HMAC of the session's nonce under the same key: a page from
the session carries it, another site cannot compute it.  Signing out revokes the
nonce in this process (bounded, forgotten when the cookie would have expired anyway);
the browser drops the cookie too.

Pure: the clock is passed in; no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

COOKIE: Final = "bridge_console"
DEFAULT_TTL_S: Final = 8 * 3600.0
MAX_REVOKED: Final = 10_000
_KEY_LABEL: Final = b"bridge console session v1"
_FORM: Final = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class Session:
    nonce: str
    expires_at: float


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class ConsoleSessions:
    def __init__(
        self,
        admin_token: str,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not admin_token:
            raise ValueError("the console needs the admin token")
        self.ttl_s = ttl_s
        self._key = hmac.new(admin_token.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self._token = admin_token.encode()
        self._clock = clock
        self._revoked: OrderedDict[str, float] = OrderedDict()  # nonce -> expires_at

    def token_matches(self, presented: str) -> bool:
        """Constant-time check of a presented admin token."""
        return hmac.compare_digest(presented.encode("utf-8", "replace"), self._token)

    def issue(self) -> tuple[str, Session]:
        """A new session and its cookie value."""
        s = Session(secrets.token_urlsafe(24), float(int(self._clock() + self.ttl_s)))
        return f"{int(s.expires_at)}.{s.nonce}.{self._sign('session', s)}", s

    def check(self, cookie: str | None) -> Session | None:
        """The session a cookie value stands for, or None (absent, forged, expired, revoked)."""
        m = _FORM.fullmatch(cookie or "")  # fullmatch: "$" would let a trailing \n through
        if m is None:
            return None
        s = Session(m.group(2), float(m.group(1)))
        if not hmac.compare_digest(m.group(3), self._sign("session", s)):
            return None
        if s.expires_at <= self._clock() or s.nonce in self._revoked:
            return None
        return s

    def csrf(self, s: Session) -> str:
        return self._sign("csrf", s)

    def csrf_ok(self, s: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "replace"), self.csrf(s).encode()
        )

    def revoke(self, s: Session) -> None:
        now = self._clock()
        while self._revoked and (
            len(self._revoked) >= MAX_REVOKED or next(iter(self._revoked.values())) <= now
        ):
            self._revoked.popitem(last=False)
        self._revoked[s.nonce] = s.expires_at

    def _sign(self, purpose: str, s: Session) -> str:
        msg = f"{purpose}|{int(s.expires_at)}|{s.nonce}".encode()
        return _b64(hmac.new(self._key, msg, hashlib.sha256).digest())
