"""The console's token page: the owner makes a token (shown once) and revokes it; staff
cannot; forms need the CSRF token; another shop's token cannot be touched."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from conftest import Client, shop_table
from support.api import bearer, make_token
from support.console import add_account, rows, sign_in

from core.models import ApiToken, AuditEntry

SECRET = re.compile(r"dgl_[A-Za-z0-9_-]{43}")


async def test_the_owner_makes_an_api_token_that_is_shown_once(owner: Client) -> None:
    csrf = owner.csrf  # type: ignore[attr-defined]
    page = await owner.get("/console/tokens")
    assert page.status == 200
    assert "아직 만든 토큰이 없어요" in await page.text()
    account = await (await owner.get("/console/me")).text()
    assert 'href="/console/tokens"' in account

    resp = await owner.post(
        "/console/tokens", data={"csrf": csrf, "name": "예약 페이지", "scope": "api"}
    )
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    html = await resp.text()
    (secret,) = set(SECRET.findall(html))
    assert "지금 복사해 두세요" in html
    # It works, once made.
    assert (await owner.get("/api/services", headers=bearer(secret))).status == 200
    # And is never shown again.
    again = await (await owner.get("/console/tokens")).text()
    assert secret not in again
    assert f"dgl_…{secret[-4:]}" in again
    assert "예약 페이지" in again
    (row,) = await rows(owner, sa.select(ApiToken.scope, ApiToken.name, ApiToken.created_by))
    assert row.scope == "api"
    assert row.created_by is not None
    audit = await rows(owner, sa.select(AuditEntry.action, AuditEntry.actor))
    assert ("api_token_created", f"user:{row.created_by}") in [tuple(a) for a in audit]


async def test_a_calendar_token_is_shown_as_the_address_to_subscribe_to(owner: Client) -> None:
    csrf = owner.csrf  # type: ignore[attr-defined]
    resp = await owner.post(
        "/console/tokens", data={"csrf": csrf, "name": "내 휴대폰", "scope": "calendar"}
    )
    html = await resp.text()
    (secret,) = set(SECRET.findall(html))
    assert f"http://127.0.0.1:8080/calendar/{secret}.ics" in html
    assert f'href="webcal://127.0.0.1:8080/calendar/{secret}.ics"' in html
    assert (await owner.get(f"/calendar/{secret}.ics")).status == 200


async def test_revoking_stops_the_token_and_keeps_its_row(owner: Client) -> None:
    csrf = owner.csrf  # type: ignore[attr-defined]
    secret = await make_token(owner)
    (token_id,) = [r.id for r in await rows(owner, sa.select(ApiToken.id))]
    resp = await owner.post(
        f"/console/tokens/{token_id}/revoke", data={"csrf": csrf}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == f"/console/tokens?revoked={token_id}"
    html = await (await owner.get(resp.headers["Location"])).text()
    assert "토큰을 폐기했어요" in html
    assert f'action="/console/tokens/{token_id}/revoke"' not in html  # nothing left to revoke
    assert (await owner.get("/api/services", headers=bearer(secret))).status == 401
    (row,) = await rows(owner, sa.select(ApiToken.revoked_at))
    assert row.revoked_at is not None


async def test_a_bad_name_or_kind_is_said_and_nothing_is_made(owner: Client) -> None:
    csrf = owner.csrf  # type: ignore[attr-defined]
    for form, said in (
        ({"name": "   ", "scope": "api"}, "토큰 이름을 적어 주세요"),
        ({"name": "x" * 61, "scope": "api"}, "60자까지"),
        ({"name": "ok", "scope": "admin"}, "토큰 종류를 골라 주세요"),
    ):
        resp = await owner.post("/console/tokens", data={"csrf": csrf, **form})
        assert resp.status == 400
        html = await resp.text()
        assert said in html
        assert not SECRET.search(html)
    assert await rows(owner, sa.select(ApiToken.id)) == []


async def test_forms_without_the_csrf_token_are_refused(owner: Client) -> None:
    await make_token(owner)
    resp = await owner.post("/console/tokens", data={"name": "x", "scope": "api"})
    assert resp.status == 403
    resp = await owner.post("/console/tokens/1/revoke", data={"csrf": "wrong"})
    assert resp.status == 403
    assert len(await rows(owner, sa.select(ApiToken.id))) == 1
    assert (await rows(owner, sa.select(ApiToken.revoked_at)))[0].revoked_at is None


async def test_staff_get_403_and_change_nothing(client: Client, cheap_hasher: None) -> None:
    await add_account(client, "kim")
    secret = await make_token(client)
    await add_account(client, "lee", role="staff")
    csrf = await sign_in(client, "lee")
    assert (await client.get("/console/tokens")).status == 403
    assert 'href="/console/tokens"' not in await (await client.get("/console/me")).text()
    resp = await client.post("/console/tokens", data={"csrf": csrf, "name": "x", "scope": "api"})
    assert resp.status == 403
    resp = await client.post("/console/tokens/1/revoke", data={"csrf": csrf})
    assert resp.status == 403
    assert len(await rows(client, sa.select(ApiToken.id))) == 1
    assert (await client.get("/api/services", headers=bearer(secret))).status == 200


async def test_another_shops_token_is_not_found(
    make_client: Callable[..., Awaitable[Client]], cheap_hasher: None
) -> None:
    other = shop_table(
        slug="saebom",
        name="새봄조경",
        kakao={
            "bot_id": "66a1e9d0e4b0a1b2c3d4e999",
            "skill_secret_env": "DANGOL_TEST_SKILL_SECRET",
        },
    )
    client = await make_client(shops=[shop_table(), other])
    theirs = await make_token(client, shop="saebom")
    await add_account(client, "kim")
    csrf = await sign_in(client, "kim")
    html = await (await client.get("/console/tokens")).text()
    assert "아직 만든 토큰이 없어요" in html  # their token is not listed here
    resp = await client.post("/console/tokens/1/revoke", data={"csrf": csrf})
    assert resp.status == 404
    assert (await client.get("/api/services", headers=bearer(theirs))).status == 200
