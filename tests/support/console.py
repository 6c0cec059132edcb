"""Helpers for the console tests: accounts, logging in (at once, or by hand through the
login form), and rows put straight into the database (customers, conversations, messages)
without going through a webhook."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Connection
from yarl import URL

from bot import keys
from bot.accounts import add_user
from core.models import Conversation, Customer, CustomerIdentity, Message

Client = TestClient[web.Request, web.Application]
PASSWORD = "abcd-efgh-jkmn-pqrs"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def app_of(client: Client) -> web.Application:
    assert client.app is not None
    return client.app


def now_of(client: Client) -> datetime:
    return app_of(client)[keys.CLOCK].now()


def shop_id(client: Client, slug: str = "hanbit") -> int:
    return app_of(client)[keys.SHOP_IDS][slug]


async def add_account(
    client: Client, username: str = "kim", *, role: str = "owner", shop: str = "hanbit"
) -> int:
    app = app_of(client)
    unit = add_user(app[keys.SHOP_IDS][shop], username, PASSWORD, role, now_of(client))
    return await app[keys.DATABASE].write(unit)


async def sign_in(client: Client, username: str = "kim") -> str:
    """Log in; returns the session's CSRF token (as the pages carry it)."""
    client.session.cookie_jar.clear()
    page = await client.get("/console/login")
    match = CSRF_FIELD.search(await page.text())
    assert match
    resp = await client.post(
        "/console/login",
        data={"username": username, "password": PASSWORD, "csrf": match.group(1)},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    home = await client.get("/console/")
    assert home.status == 200
    token = CSRF_META.search(await home.text())
    assert token
    return token.group(1)


async def write(client: Client, unit: Any) -> Any:
    return await app_of(client)[keys.DATABASE].write(unit)


async def rows(client: Client, stmt: Any) -> list[Any]:
    async with app_of(client)[keys.DATABASE].read() as conn:
        return list((await conn.execute(stmt)).all())


def insert_customer(
    conn: Connection,
    shop: int,
    at: datetime,
    *,
    name: str | None = None,
    phone: str | None = None,
    kakao: str | None = None,
    tags: list[str] | None = None,
    notes: str = "",
    tier: str | None = None,
) -> int:
    customer_id: int = conn.execute(
        sa.insert(Customer)
        .values(shop_id=shop, name=name, tier=tier, tags=tags or [], notes=notes, created_at=at)
        .returning(Customer.id)
    ).scalar_one()
    for kind, value in (("phone", phone), ("kakao_bot_user", kakao)):
        if value:
            conn.execute(
                sa.insert(CustomerIdentity).values(
                    shop_id=shop, customer_id=customer_id, kind=kind, value=value, created_at=at
                )
            )
    return customer_id


def insert_conversation(
    conn: Connection,
    shop: int,
    customer_id: int,
    at: datetime,
    *,
    channel: str = "kakao",
    status: str = "open",
    waiting_since: datetime | None = None,
    unread: int = 0,
    complaint: bool = False,
    complaint_due_at: datetime | None = None,
    snoozed_until: datetime | None = None,
) -> int:
    conversation_id: int = conn.execute(
        sa.insert(Conversation)
        .values(
            shop_id=shop,
            customer_id=customer_id,
            channel=channel,
            status=status,
            waiting_since=waiting_since,
            complaint=complaint,
            complaint_due_at=complaint_due_at,
            snoozed_until=snoozed_until,
            unread_count=unread,
            last_message_at=at,
            created_at=at,
            resolved_at=at if status == "resolved" else None,
        )
        .returning(Conversation.id)
    ).scalar_one()
    return conversation_id


def insert_message(
    conn: Connection,
    shop: int,
    conversation_id: int,
    customer_id: int,
    at: datetime,
    body: str,
    *,
    direction: str = "in",
    sender: str = "customer",
    channel: str = "kakao",
    status: str = "received",
    path: str | None = None,
    error: str | None = None,
) -> int:
    message_id: int = conn.execute(
        sa.insert(Message)
        .values(
            shop_id=shop,
            conversation_id=conversation_id,
            customer_id=customer_id,
            direction=direction,
            sender=sender,
            channel=channel,
            body=body,
            payload={},
            status=status,
            path=path,
            error=error,
            created_at=at,
        )
        .returning(Message.id)
    ).scalar_one()
    return message_id


async def thread(
    client: Client,
    *,
    shop: str = "hanbit",
    name: str | None = "김고객",
    phone: str | None = None,
    kakao: str | None = "kakao-user-0001",
    channel: str = "kakao",
    waited_minutes: float | None = 5,
    body: str = "에어컨에서 물이 새요",
    unread: int = 1,
    tags: list[str] | None = None,
    notes: str = "",
    **conversation: Any,
) -> tuple[int, int]:
    """A customer with one conversation and one message from them: (customer, conversation)."""
    at = now_of(client)
    sid = shop_id(client, shop)
    waiting = None if waited_minutes is None else at - timedelta(minutes=waited_minutes)

    def unit(conn: Connection) -> tuple[int, int]:
        customer_id = insert_customer(
            conn, sid, at, name=name, phone=phone, kakao=kakao, tags=tags, notes=notes
        )
        conversation_id = insert_conversation(
            conn,
            sid,
            customer_id,
            waiting or at,
            channel=channel,
            waiting_since=waiting,
            unread=unread,
            **conversation,
        )
        insert_message(
            conn, sid, conversation_id, customer_id, waiting or at, body, channel=channel
        )
        return customer_id, conversation_id

    result: tuple[int, int] = await write(client, unit)
    return result


# --------------------------------------------------------------------------- by hand


async def add(
    client: Client,
    username: str = "kim",
    password: str = PASSWORD,
    *,
    role: str = "owner",
    shop: str = "hanbit",
) -> int:
    app = client.app
    assert app is not None
    now = app[keys.CLOCK].now()
    unit = add_user(app[keys.SHOP_IDS][shop], username, password, role, now)
    return await app[keys.DATABASE].write(unit)


async def login_csrf(client: Client) -> str:
    resp = await client.get("/console/login", allow_redirects=False)
    if resp.status == 200:
        match = CSRF_FIELD.search(await resp.text())
        assert match
        return match.group(1)
    # Already signed in (the page redirects): the login CSRF cookie is still in the jar.
    return cookie(client, "dangol_login_csrf") or ""


async def login(
    client: Client,
    username: str = "kim",
    password: str = PASSWORD,
    *,
    next_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    form = {"username": username, "password": password, "csrf": await login_csrf(client)}
    if next_url is not None:
        form["next"] = next_url
    return await client.post("/console/login", data=form, allow_redirects=False, headers=headers)


def cookie(client: Client, name: str) -> str | None:
    for morsel in client.session.cookie_jar:
        if morsel.key == name:
            return morsel.value
    return None


def use_session(client: Client, token: str | None) -> None:
    """Make the client present exactly this session cookie (or none)."""
    jar = client.session.cookie_jar
    login_csrf_token = cookie(client, "dangol_login_csrf")
    jar.clear()
    url = URL(str(client.make_url("/console/")))
    if login_csrf_token:
        jar.update_cookies({"dangol_login_csrf": login_csrf_token}, url)
    if token is not None:
        jar.update_cookies({"dangol_session": token}, url)


async def page_csrf(client: Client) -> str:
    resp = await client.get("/console/")
    assert resp.status == 200
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', await resp.text())
    assert match
    return match.group(1)
