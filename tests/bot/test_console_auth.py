"""Console accounts and sessions end to end: the real app factory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from conftest import make_settings, shop_table
from multidict import CIMultiDict
from support.console import (
    CSRF_FIELD,
    PASSWORD,
    add,
    login,
    login_csrf,
    page_csrf,
    use_session,
)

from bot import accounts, keys
from bot.accounts import AccountError, reset_password
from bot.cli import main
from bot.console import Viewer
from core.clock import FrozenClock
from core.config import ConfigError
from core.models import AuditEntry, ConsoleSession, LoginAttempt, User

Client = TestClient[web.Request, web.Application]


pytestmark = pytest.mark.usefixtures("cheap_hasher")


@pytest.fixture
def make_client(
    db_url: tuple[str, str | None], clock: FrozenClock, aiohttp_client: Any
) -> Callable[..., Awaitable[Client]]:
    url, schema = db_url

    async def make(**sections: Any) -> Client:
        database = {"url": url, **({"schema": schema} if schema else {})}
        settings = make_settings(url, database=database, **sections)
        client: Client = await aiohttp_client(create_app_for(settings, clock))
        return client

    return make


def create_app_for(settings: Any, clock: FrozenClock) -> web.Application:
    from bot.app import create_app

    return create_app(settings, clock=clock)


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[Client]]) -> Client:
    return await make_client()


async def signed_in(client: Client) -> bool:
    resp = await client.get("/console/", allow_redirects=False)
    if resp.status == 200:
        return True
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/console/login")
    return False


async def rows(client: Client, stmt: Any) -> list[Any]:
    assert client.app is not None
    async with client.app[keys.DATABASE].read() as conn:
        return list((await conn.execute(stmt)).all())


# --------------------------------------------------------------------------- logging in


async def test_login_sets_an_httponly_lax_cookie_scoped_to_the_console(client: Client) -> None:
    await add(client)
    resp = await login(client)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/"
    morsel = resp.cookies["dangol_session"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/console"
    assert not morsel["secure"]  # plain HTTP and secure_cookies = "auto"
    assert int(morsel["max-age"]) == 30 * 86400

    page = await client.get("/console/")
    assert page.status == 200
    html = await page.text()
    assert "받은 문의함" in html
    assert "한빛설비" in html
    assert "kim" in html


async def test_the_database_keeps_only_the_hash_of_the_session_token(client: Client) -> None:
    await add(client)
    resp = await login(client)
    token = resp.cookies["dangol_session"].value
    (row,) = await rows(client, sa.select(ConsoleSession))
    assert row.id == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {row.id, row.csrf_token}
    assert row.ip == "127.0.0.1"
    assert row.expires_at == row.created_at + timedelta(days=30)


PROXY = {"trust_proxy": True}


@pytest.mark.parametrize(
    ("server", "console", "headers", "secure"),
    [
        ({}, {}, {"X-Forwarded-Proto": "https"}, False),  # a client's claim is not believed
        (PROXY, {}, {"X-Forwarded-Proto": "https"}, True),
        (PROXY, {}, {"X-Forwarded-Proto": "http"}, False),
        # Issue 12: the client's "https" left of the proxy's own "http" was believed.
        (PROXY, {}, {"X-Forwarded-Proto": "https, http"}, False),
        ({}, {"secure_cookies": True}, {}, True),
        (PROXY, {"secure_cookies": False}, {"X-Forwarded-Proto": "https"}, False),
    ],
)
async def test_secure_flag_follows_https_and_config(
    make_client: Callable[..., Awaitable[Client]],
    server: dict[str, Any],
    console: dict[str, Any],
    headers: dict[str, str],
    secure: bool,
) -> None:
    client = await make_client(server=server, console=console)
    await add(client)
    token = await login_csrf(client)
    # The jar will not send a Secure cookie over plain HTTP; a browser at https:// would.
    cookie_header = {"Cookie": f"dangol_login_csrf={token}"}
    resp = await client.post(
        "/console/login",
        data={"username": "kim", "password": PASSWORD, "csrf": token},
        headers={**headers, **cookie_header},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert bool(resp.cookies["dangol_session"]["secure"]) is secure
    assert bool(resp.cookies["dangol_session"]["httponly"])


async def test_a_login_rotates_the_session_and_the_old_cookie_dies(client: Client) -> None:
    await add(client)
    first = (await login(client)).cookies["dangol_session"].value
    assert await signed_in(client)

    second_resp = await login(client)  # the browser still holds the first cookie
    second = second_resp.cookies["dangol_session"].value
    assert second != first

    use_session(client, first)
    assert not await signed_in(client)
    use_session(client, second)
    assert await signed_in(client)
    assert len(await rows(client, sa.select(ConsoleSession.id))) == 1


async def test_usernames_ignore_case(client: Client) -> None:
    await add(client, "Kim.Lee")
    with pytest.raises(AccountError, match="already taken"):
        await add(client, "KIM.lee")
    resp = await login(client, "  KIM.LEE ")
    assert resp.status == 303
    (row,) = await rows(client, sa.select(User.username).where(User.role == "owner"))
    assert row.username == "kim.lee"


async def test_the_login_page_goes_back_where_the_owner_was_headed(client: Client) -> None:
    await add(client)
    resp = await client.get("/console/api-less/page?x=1", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login?next=/console/api-less/page?x%3D1"

    resp = await login(client, next_url="/console/c/12")
    assert resp.headers["Location"] == "/console/c/12"


@pytest.mark.parametrize(
    "evil", ["//evil.example/", "https://evil.example/", "/console//evil.example", "/\\evil"]
)
async def test_next_never_leaves_the_console(client: Client, evil: str) -> None:
    await add(client)
    resp = await login(client, next_url=evil)
    assert resp.headers["Location"] == "/console/"


async def test_a_stale_hash_is_upgraded_at_login(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add(client)
    monkeypatch.setattr(
        accounts, "hasher", PasswordHasher(time_cost=2, memory_cost=512, parallelism=1)
    )
    assert (await login(client)).status == 303
    (row,) = await rows(client, sa.select(User.password_hash))
    assert "m=512,t=2,p=1" in row.password_hash
    use_session(client, None)
    assert (await login(client)).status == 303  # the new hash verifies


# --------------------------------------------------------------------------- logging out


async def test_logout_ends_the_session_and_is_post_only(client: Client) -> None:
    await add(client)
    token = (await login(client)).cookies["dangol_session"].value

    resp = await client.get("/console/logout", allow_redirects=False)
    assert resp.status == 405
    assert await signed_in(client)  # GET changed nothing

    resp = await client.post(
        "/console/logout", data={"csrf": await page_csrf(client)}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login"
    gone = resp.cookies["dangol_session"]
    assert gone.value == ""
    assert gone["path"] == "/console"
    assert int(gone["max-age"]) == 0
    assert await rows(client, sa.select(ConsoleSession.id)) == []

    use_session(client, token)  # a copy of the cookie kept somewhere
    assert not await signed_in(client)
    actions = [r.action for r in await rows(client, sa.select(AuditEntry.action))]
    assert actions[-2:] == ["login", "logout"]


async def test_an_invalid_cookie_is_expired(client: Client) -> None:
    use_session(client, "no-such-session")
    resp = await client.get("/console/", allow_redirects=False)
    assert resp.status == 303
    assert resp.cookies["dangol_session"].value == ""


# --------------------------------------------------------------------------- timeouts


async def test_idle_timeout(client: Client, clock: FrozenClock) -> None:
    await add(client)
    await login(client)
    clock.advance(hours=11, minutes=59)
    assert await signed_in(client)  # and that request counts as activity
    clock.advance(hours=11, minutes=59)
    assert await signed_in(client)
    clock.advance(hours=12)
    assert not await signed_in(client)


async def test_last_seen_is_written_at_most_once_a_minute(
    client: Client, clock: FrozenClock
) -> None:
    await add(client)
    await login(client)
    (created,) = await rows(client, sa.select(ConsoleSession.last_seen_at))
    clock.advance(seconds=30)
    assert await signed_in(client)
    assert await rows(client, sa.select(ConsoleSession.last_seen_at)) == [created]
    clock.advance(seconds=31)
    assert await signed_in(client)
    ((seen,),) = await rows(client, sa.select(ConsoleSession.last_seen_at))
    assert seen == clock.now()


async def test_absolute_timeout(client: Client, clock: FrozenClock) -> None:
    await add(client)
    await login(client)
    started = clock.now()
    while clock.now() < started + timedelta(days=30) - timedelta(hours=11):
        clock.advance(hours=11)
        assert await signed_in(client)
    clock.set(started + timedelta(days=30))
    assert not await signed_in(client)


async def test_idle_timeout_is_configurable(
    make_client: Callable[..., Awaitable[Client]], clock: FrozenClock
) -> None:
    client = await make_client(console={"session_idle_minutes": 30})
    await add(client)
    await login(client)
    clock.advance(minutes=29)
    assert await signed_in(client)
    clock.advance(minutes=30)
    assert not await signed_in(client)


# --------------------------------------------------------------------------- CSRF


async def test_state_changes_need_the_sessions_csrf_token(client: Client) -> None:
    await add(client)
    await login(client)
    token = await page_csrf(client)

    for data, headers in [({}, {}), ({"csrf": "wrong"}, {}), ({}, {"X-CSRF-Token": "wrong"})]:
        resp = await client.post(
            "/console/logout", data=data, headers=headers, allow_redirects=False
        )
        assert resp.status == 403
        assert "Content-Security-Policy" in resp.headers
    assert await signed_in(client)

    resp = await client.post("/console/api/me", headers={"X-CSRF-Token": "wrong"})
    assert resp.status == 403
    assert await resp.json() == {"error": "csrf"}

    resp = await client.post(
        "/console/logout", headers={"X-CSRF-Token": token}, allow_redirects=False
    )
    assert resp.status == 303
    assert not await signed_in(client)


async def test_another_sessions_token_does_not_do(client: Client, aiohttp_client: Any) -> None:
    await add(client)
    await login(client)
    other: Client = await aiohttp_client(client.server)
    await login(other)
    resp = await client.post(
        "/console/logout", data={"csrf": await page_csrf(other)}, allow_redirects=False
    )
    assert resp.status == 403


async def test_the_login_form_is_csrf_protected(client: Client) -> None:
    await add(client)
    await login_csrf(client)  # the browser has the cookie, but the form lacks the token
    resp = await client.post(
        "/console/login", data={"username": "kim", "password": PASSWORD}, allow_redirects=False
    )
    assert resp.status == 403
    assert "dangol_session" not in resp.cookies

    use_session(client, None)
    client.session.cookie_jar.clear()  # a forged form from elsewhere: no cookie to match
    resp = await client.post(
        "/console/login",
        data={"username": "kim", "password": PASSWORD, "csrf": "A" * 43},
        allow_redirects=False,
    )
    assert resp.status == 403


async def test_the_login_csrf_cookie_is_strict_and_http_only(client: Client) -> None:
    resp = await client.get("/console/login")
    morsel = resp.cookies["dangol_login_csrf"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/console"
    again = await client.get("/console/login")  # the same token while the cookie lasts
    assert "dangol_login_csrf" not in again.cookies
    assert CSRF_FIELD.findall(await again.text()) == [morsel.value]


async def test_a_foreign_origin_is_refused_even_with_the_token(client: Client) -> None:
    await add(client)
    form = {"username": "kim", "password": PASSWORD, "csrf": await login_csrf(client)}
    resp = await client.post(
        "/console/login",
        data=form,
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert resp.status == 403
    resp = await client.post(
        "/console/login", data=form, headers={"Origin": "null"}, allow_redirects=False
    )
    assert resp.status == 403
    own = f"http://{client.host}:{client.port}"
    resp = await client.post(
        "/console/login", data=form, headers={"Origin": own}, allow_redirects=False
    )
    assert resp.status == 303


async def test_behind_the_proxy_a_client_cannot_add_an_origin(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    """Issue 12: a client's own X-Forwarded-Host line, ahead of the proxy's, was taken as
    one of our hosts, so a page at that origin could post to the console."""
    client = await make_client(server=PROXY)
    await add(client)
    form = {"username": "kim", "password": PASSWORD, "csrf": await login_csrf(client)}
    spoofed = CIMultiDict(
        [
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Host", "shop.example.com"),
            ("Origin", "https://evil.example"),
        ]
    )
    resp = await client.post("/console/login", data=form, headers=spoofed, allow_redirects=False)
    assert resp.status == 403
    proxied = {"X-Forwarded-Host": "evil.example, shop.example.com"}
    resp = await client.post(
        "/console/login",
        data=form,
        headers={**proxied, "Origin": "https://shop.example.com"},
        allow_redirects=False,
    )
    assert resp.status == 303

    # Without a trusted proxy the header is nobody's word: not even one value counts.
    direct = await make_client()  # the same database: kim is there
    form = {"username": "kim", "password": PASSWORD, "csrf": await login_csrf(direct)}
    claimed = {"X-Forwarded-Host": "evil.example", "Origin": "https://evil.example"}
    resp = await direct.post("/console/login", data=form, headers=claimed, allow_redirects=False)
    assert resp.status == 403


# --------------------------------------------------------------------------- throttling


async def test_an_account_is_throttled_after_repeated_failures(
    make_client: Callable[..., Awaitable[Client]], clock: FrozenClock
) -> None:
    client = await make_client(console={"login_failures_per_account": 3})
    await add(client)
    for _ in range(3):
        resp = await login(client, password="wrong")
        assert resp.status == 200
    refused = await login(client)  # the right password, but too late
    assert refused.status == 200
    assert "dangol_session" not in refused.cookies
    assert "아이디 또는 비밀번호가 맞지 않아요." in await refused.text()

    clock.advance(minutes=14)
    assert (await login(client)).status == 200
    clock.advance(minutes=1, seconds=1)
    resp = await login(client)
    assert resp.status == 303
    assert "dangol_session" in resp.cookies


async def test_a_success_forgives_earlier_failures(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(console={"login_failures_per_account": 3})
    await add(client)
    for _ in range(2):
        await login(client, password="wrong")
    assert (await login(client)).status == 303
    assert await rows(client, sa.select(LoginAttempt.id)) == []


async def test_an_address_is_throttled_across_accounts(
    make_client: Callable[..., Awaitable[Client]], clock: FrozenClock
) -> None:
    client = await make_client(
        server=PROXY, console={"login_failures_per_ip": 3, "login_failures_per_account": 10}
    )
    await add(client)
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    for name in ("lee", "park", "choi"):
        await login(client, name, "guess", headers=attacker)
    assert (await login(client, headers=attacker)).status == 200  # refused
    # The owner at another address is not caught by the attacker's limit.
    resp = await login(client, headers={"X-Forwarded-For": "198.51.100.1"})
    assert resp.status == 303

    clock.advance(minutes=15, seconds=1)
    assert (await login(client, headers=attacker)).status == 303


async def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(console={"login_failures_per_ip": 2})
    await add(client)
    await login(client, "lee", "guess", headers={"X-Forwarded-For": "203.0.113.1"})
    await login(client, "park", "guess", headers={"X-Forwarded-For": "203.0.113.2"})
    resp = await login(client, headers={"X-Forwarded-For": "203.0.113.3"})
    assert resp.status == 200  # all three came from 127.0.0.1
    ips = {r.ip for r in await rows(client, sa.select(LoginAttempt.ip))}
    assert ips == {"127.0.0.1"}


async def test_behind_the_proxy_a_client_cannot_choose_its_address(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    """Issue 12: of two X-Forwarded-For lines (HAProxy adds its own line) the first, the
    client's, was counted — each guess could come from a new address of its choosing."""
    client = await make_client(
        server=PROXY, console={"login_failures_per_ip": 2, "login_failures_per_account": 10}
    )
    await add(client)
    proxy_saw = "198.51.100.7"
    for n, name in enumerate(("lee", "park")):
        claimed = CIMultiDict(
            [("X-Forwarded-For", f"203.0.113.{n}"), ("X-Forwarded-For", proxy_saw)]
        )
        await login(client, name, "guess", headers=claimed)
    appended = {"X-Forwarded-For": f"203.0.113.9, {proxy_saw}"}
    assert (await login(client, headers=appended)).status == 200  # refused: 2 failures
    ips = {r.ip for r in await rows(client, sa.select(LoginAttempt.ip))}
    assert ips == {proxy_saw}


async def test_every_refusal_looks_the_same(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(console={"login_failures_per_account": 2})
    await add(client)
    disabled_id = await add(client, "gone", role="staff")
    assert client.app is not None
    await client.app[keys.DATABASE].write(
        lambda conn: conn.execute(
            sa.update(User).where(User.id == disabled_id).values(disabled=True)
        )
    )
    unknown = await login(client, "nobody", PASSWORD)
    wrong = await login(client, "kim", "wrong")
    disabled = await login(client, "gone", PASSWORD)
    await login(client, "kim", "wrong")
    throttled = await login(client, "kim", PASSWORD)
    bodies = {await r.read() for r in (unknown, wrong, disabled, throttled)}
    assert {r.status for r in (unknown, wrong, disabled, throttled)} == {200}
    assert len(bodies) == 1
    for r in (unknown, wrong, disabled, throttled):
        assert "Set-Cookie" not in r.headers


async def test_unknown_users_are_checked_against_a_dummy_hash(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []

    class Spy(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            checked.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(accounts, "hasher", Spy(time_cost=1, memory_cost=256, parallelism=1))
    await login(client, "nobody", "whatever")
    assert len(checked) == 1
    assert checked[0].startswith("$argon2id$")


async def test_a_disabled_users_sessions_stop_working(client: Client) -> None:
    user_id = await add(client)
    await login(client)
    assert client.app is not None
    await client.app[keys.DATABASE].write(
        lambda conn: conn.execute(sa.update(User).where(User.id == user_id).values(disabled=True))
    )
    assert not await signed_in(client)


# --------------------------------------------------------------------------- passwords


async def test_reset_password_ends_every_session(client: Client) -> None:
    await add(client)
    await login(client)
    assert client.app is not None
    now = client.app[keys.CLOCK].now()
    await client.app[keys.DATABASE].write(reset_password("KIM", "new-pass-word-1234", now))
    assert not await signed_in(client)
    assert (await login(client)).status == 200
    assert (await login(client, password="new-pass-word-1234")).status == 303


async def test_reset_password_of_nobody_is_an_error(client: Client) -> None:
    assert client.app is not None
    now = client.app[keys.CLOCK].now()
    with pytest.raises(AccountError, match="no user named 'ghost'"):
        await client.app[keys.DATABASE].write(reset_password("ghost", "x" * 16, now))


def _config(tmp_path: Path, url: str, schema: str | None) -> Path:
    schema_line = f'schema = "{schema}"\n' if schema else ""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "{url}"
{schema_line}
[[shops]]
slug = "hanbit"
name = "한빛설비"

[shops.hours]
mon = "09:00-18:00"
tue = "09:00-18:00"
wed = "09:00-18:00"
thu = "09:00-18:00"
fri = "09:00-18:00"
sat = "closed"
sun = "closed"

[shops.owner]
name = "김사장"
""",
        "utf-8",
    )
    return path


async def test_cli_user_add_and_reset_password(
    client: Client,
    db_url: tuple[str, str | None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(_config(tmp_path, *db_url))

    async def dangol(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await dangol(
        "user",
        "add",
        "--config",
        config,
        "--shop",
        "hanbit",
        "--username",
        "Lee",
        "--role",
        "staff",
    )
    assert code == 0
    match = re.search(r"username lee  password (\S+)", out)
    assert match, out
    password = match.group(1)
    resp = await login(client, "lee", password)
    assert resp.status == 303

    code, _, err = await dangol(
        "user", "add", "--config", config, "--shop", "hanbit", "--username", "LEE"
    )
    assert code == 1
    assert err.strip() == "dangol: the username 'lee' is already taken"

    code, _, err = await dangol(
        "user", "add", "--config", config, "--shop", "nope", "--username", "x1"
    )
    assert code == 1
    assert "no shop 'nope'" in err

    code, out, _ = await dangol("user", "reset-password", "--config", config, "--username", "lee")
    assert code == 0
    new = re.search(r"new password for lee: (\S+)", out)
    assert new
    assert not await signed_in(client)
    assert (await login(client, "lee", password)).status == 200
    assert (await login(client, "lee", new.group(1))).status == 303

    code, _, err = await dangol("user", "reset-password", "--config", config, "--username", "ghost")
    assert code == 1
    assert err.strip() == "dangol: no user named 'ghost'"


# --------------------------------------------------------------------------- the skeleton


async def test_strangers_are_sent_to_login_and_the_api_says_401(client: Client) -> None:
    resp = await client.get("/console/", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login?next=/console/"
    assert resp.headers["Content-Security-Policy"]

    resp = await client.get("/console", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/"

    for path in ("/console/api/anything", "/console/api/me"):
        resp = await client.get(path)
        assert resp.status == 401
        assert await resp.json() == {"error": "login_required"}

    resp = await client.post("/console/api/anything", headers={"X-CSRF-Token": "x"})
    assert resp.status == 401

    resp = await client.post("/console/logout", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login"


async def test_security_headers_on_every_console_response(client: Client) -> None:
    await add(client)
    login_page = await client.get("/console/login")
    await login(client)
    inbox = await client.get("/console/")
    missing = await client.get("/console/api/nothing-here")
    assert missing.status == 404
    assert await missing.json() == {"error": "not_found"}
    for resp in (login_page, inbox, missing):
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "img-src 'self' data: blob:" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"
        assert resp.headers["Cache-Control"] == "no-store"


async def test_pages_load_nothing_from_elsewhere_and_run_no_inline_script(client: Client) -> None:
    await add(client)
    login_html = await (await client.get("/console/login")).text()
    await login(client)
    inbox_html = await (await client.get("/console/")).text()
    for html in (login_html, inbox_html):
        assert "<script>" not in html
        assert "style=" not in html
        assert "http://" not in html
        assert "https://" not in html
    css = re.search(r'<link rel="stylesheet" href="([^"]+)">', login_html)
    assert css
    client.session.cookie_jar.clear()
    resp = await client.get(css.group(1))  # no login needed for the stylesheet
    assert resp.status == 200
    assert resp.content_type == "text/css"
    assert "font-family" in await resp.text()
    assert "@import" not in await resp.text()


async def test_signed_in_the_login_page_moves_on(client: Client) -> None:
    await add(client)
    await login(client)
    resp = await client.get("/console/login?next=/console/c/3", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/c/3"


async def test_staff_see_only_their_own_shop(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    # Both shops' Kakao secrets come from DANGOL_TEST_SKILL_SECRET (set in conftest).
    other = shop_table(slug="other", name="다른설비")
    client = await make_client(shops=[shop_table(), other])
    assert client.app is not None
    ids = client.app[keys.SHOP_IDS]
    await add(client, "staff-a", role="staff", shop="hanbit")
    await add(client, "owner-b", role="owner", shop="other")

    await login(client, "staff-a")
    me = await (await client.get("/console/api/me")).json()
    assert me["shop"] == {"id": ids["hanbit"], "slug": "hanbit", "name": "한빛설비"}
    assert me["user"]["role"] == "staff"
    html = await (await client.get("/console/")).text()
    assert "한빛설비" in html
    assert "다른설비" not in html
    assert "직원" in html

    (session,) = await rows(client, sa.select(ConsoleSession.shop_id))
    assert session.shop_id == ids["hanbit"]

    viewer = Viewer(
        user_id=1,
        username="staff-a",
        role="staff",
        shop_id=ids["hanbit"],
        shop_slug="hanbit",
        shop_name="한빛설비",
    )
    visible = await rows(client, sa.select(User.username).where(viewer.scope(User.shop_id)))
    assert [r.username for r in visible] == ["staff-a"]


async def test_a_session_whose_user_moved_shop_is_void(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(shops=[shop_table(), shop_table(slug="other", name="다른설비")])
    assert client.app is not None
    ids = client.app[keys.SHOP_IDS]
    user_id = await add(client, "staff-a", role="staff")
    await login(client, "staff-a")
    await client.app[keys.DATABASE].write(
        lambda conn: conn.execute(
            sa.update(User).where(User.id == user_id).values(shop_id=ids["other"])
        )
    )
    assert not await signed_in(client)


# --------------------------------------------------------------------------- config


def test_console_settings_have_defaults_and_named_errors() -> None:
    cfg = make_settings().console
    assert (cfg.session_idle_minutes, cfg.session_absolute_days) == (720, 30)
    assert cfg.secure_cookies == "auto"
    assert (cfg.login_failures_per_account, cfg.login_failures_per_ip) == (5, 20)

    with pytest.raises(ConfigError, match=r'console\.secure_cookies: expected "auto", true'):
        make_settings(console={"secure_cookies": "sometimes"})
    with pytest.raises(ConfigError, match=r"console\.session_idle_minute: unknown key"):
        make_settings(console={"session_idle_minute": 5})
    with pytest.raises(ConfigError, match=r"console\.session_idle_minutes: must not be longer"):
        make_settings(console={"session_idle_minutes": 2 * 24 * 60, "session_absolute_days": 1})
