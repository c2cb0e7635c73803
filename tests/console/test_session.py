"""Signed session cookies and CSRF tokens (pure: the clock is passed in)."""

from __future__ import annotations

from bridge.console.session import MAX_REVOKED, ConsoleSessions

TOKEN = "console-test-token-0123456789-abcdefghij"


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_cookie_stands_for_its_session_until_it_expires() -> None:
    clock = Clock()
    sessions = ConsoleSessions(TOKEN, ttl_s=60, clock=clock)
    cookie, s = sessions.issue()
    assert sessions.check(cookie) == s
    clock.t += 59
    assert sessions.check(cookie) == s
    clock.t += 1
    assert sessions.check(cookie) is None


def test_the_cookie_never_carries_the_token() -> None:
    cookie, s = ConsoleSessions(TOKEN).issue()
    assert TOKEN not in cookie and TOKEN[:16] not in cookie
    assert TOKEN not in ConsoleSessions(TOKEN).csrf(s)


def test_forged_and_malformed_cookies_are_refused() -> None:
    sessions = ConsoleSessions(TOKEN)
    cookie, _ = sessions.issue()
    expires, nonce, sig = cookie.split(".")
    later = str(int(expires) + 10**6)
    other_sig = "A" * 43
    for bad in (
        None,
        "",
        "garbage",
        f"{later}.{nonce}.{sig}",  # a longer life, same signature
        f"{expires}.{nonce}x.{sig}",
        f"{expires}.{nonce}.{other_sig}",
        cookie + "\n",
        cookie.replace(".", ":"),
    ):
        assert sessions.check(bad) is None, bad


def test_another_admin_token_signs_every_session_out() -> None:
    cookie, _ = ConsoleSessions(TOKEN).issue()
    assert ConsoleSessions(TOKEN + "-rotated").check(cookie) is None
    assert ConsoleSessions(TOKEN).check(cookie) is not None  # another process, same token


def test_csrf_token_belongs_to_its_session() -> None:
    sessions = ConsoleSessions(TOKEN)
    _, a = sessions.issue()
    _, b = sessions.issue()
    assert sessions.csrf_ok(a, sessions.csrf(a))
    assert not sessions.csrf_ok(a, sessions.csrf(b))
    assert not sessions.csrf_ok(a, None)
    assert not sessions.csrf_ok(a, "")
    assert not sessions.csrf_ok(a, "é")


def test_revoked_session_is_refused_and_the_list_stays_bounded() -> None:
    clock = Clock()
    sessions = ConsoleSessions(TOKEN, ttl_s=60, clock=clock)
    cookie, s = sessions.issue()
    sessions.revoke(s)
    assert sessions.check(cookie) is None
    other, _ = sessions.issue()
    assert sessions.check(other) is not None
    for _ in range(MAX_REVOKED + 5):
        sessions.revoke(sessions.issue()[1])
    assert len(sessions._revoked) <= MAX_REVOKED


def test_token_check_is_exact() -> None:
    sessions = ConsoleSessions(TOKEN)
    assert sessions.token_matches(TOKEN)
    assert not sessions.token_matches(TOKEN[:-1])
    assert not sessions.token_matches(TOKEN + " ")
    assert not sessions.token_matches("")
