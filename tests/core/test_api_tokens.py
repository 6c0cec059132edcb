"""API tokens: shown once, stored hashed, revoked never deleted, checked by scope, and
marked used at most once a minute."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import kst
from support.outbox import add_shop

from core.api_tokens import (
    PREFIX,
    TokenError,
    TokenNotFound,
    create,
    list_tokens,
    looks_like_token,
    revoke,
    verify,
)
from core.clock import FrozenClock
from core.db import Database
from core.models import ApiToken, AuditEntry


async def test_a_token_is_stored_as_its_hash_and_shown_once(
    database: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    made = await database.write(create(shop_id, "api", "  예약   페이지 ", "user:1", now))
    assert made.secret.startswith(PREFIX)
    assert looks_like_token(made.secret)
    assert made.name == "예약 페이지"
    assert made.hint == made.secret[-4:]
    async with database.read() as conn:
        row = (await conn.execute(sa.select(ApiToken.__table__))).mappings().one()
        audit = (await conn.execute(sa.select(AuditEntry.__table__))).mappings().all()
    assert row["token_hash"] == hashlib.sha256(made.secret.encode()).hexdigest()
    # The secret is nowhere in the database: not in the row, not in the audit log.
    assert made.secret not in repr(dict(row))
    assert made.secret not in repr([dict(a) for a in audit])
    assert [(a["action"], a["subject"], a["actor"]) for a in audit] == [
        ("api_token_created", f"api_token:{made.id}", "user:1")
    ]
    assert audit[0]["detail"] == {"scope": "api", "name": "예약 페이지", "hint": made.hint}

    async with database.read() as conn:
        listed = await list_tokens(conn, shop_id)
    assert [(t.id, t.scope, t.masked, t.active) for t in listed] == [
        (made.id, "api", f"dgl_…{made.hint}", True)
    ]
    assert not hasattr(listed[0], "secret")


async def test_two_tokens_are_never_the_same(database: Database, clock: FrozenClock) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    a = await database.write(create(shop_id, "api", "a", "cli", now))
    b = await database.write(create(shop_id, "api", "a", "cli", now))
    assert a.secret != b.secret


@pytest.mark.parametrize(
    ("scope", "name", "message"),
    [
        ("api", "", "이름"),
        ("api", " \t\n", "이름"),
        ("api", "x" * 61, "60자"),
        ("admin", "ok", "범위"),
    ],
)
def test_a_token_needs_a_name_and_a_known_scope(scope: str, name: str, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        create(1, scope, name, "cli", kst(2026, 11, 23, 10))


async def test_verify_checks_the_scope_and_revocation(
    database: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    api = await database.write(create(shop_id, "api", "booking page", "cli", now))
    feed = await database.write(create(shop_id, "calendar", "phone", "cli", now))

    found = await verify(database, api.secret, "api", now)
    assert found is not None
    assert (found.id, found.shop_id, found.scope) == (api.id, shop_id, "api")
    assert await verify(database, api.secret, "calendar", now) is None
    assert await verify(database, feed.secret, "api", now) is None
    assert await verify(database, feed.secret, "calendar", now) is not None
    for wrong in ("", "dgl_", api.secret[:-1], api.secret + "x", api.secret.upper(), "x" * 5000):
        assert await verify(database, wrong, "api", now) is None

    assert await database.write(revoke(api.id, "user:1", now)) is True
    assert await verify(database, api.secret, "api", now) is None
    # Revoking again changes nothing and writes no second audit entry.
    assert await database.write(revoke(api.id, "user:1", now)) is False
    async with database.read() as conn:
        row = (await conn.execute(sa.select(ApiToken).where(ApiToken.id == api.id))).one()
        revoked = (
            await conn.execute(
                sa.select(AuditEntry.subject).where(AuditEntry.action == "api_token_revoked")
            )
        ).all()
    assert row.revoked_at == now  # kept, never deleted
    assert revoked == [(f"api_token:{api.id}",)]


async def test_revoke_is_held_to_the_shop(database: Database, clock: FrozenClock) -> None:
    now = clock.now()
    ours = await add_shop(database, now)
    theirs = await add_shop(database, now, slug="other")
    token = await database.write(create(theirs, "api", "theirs", "cli", now))
    with pytest.raises(TokenNotFound):
        await database.write(revoke(token.id, "user:1", now, shop_id=ours))
    with pytest.raises(TokenNotFound):
        await database.write(revoke(token.id + 100, "user:1", now))
    assert await verify(database, token.secret, "api", now) is not None
    async with database.read() as conn:
        assert [t.id for t in await list_tokens(conn, ours)] == []
        assert [t.id for t in await list_tokens(conn)] == [token.id]


async def test_last_used_is_written_at_most_once_a_minute(
    database: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    token = await database.write(create(shop_id, "calendar", "phone", "cli", now))

    async def last_used() -> object:
        async with database.read() as conn:
            return (await conn.execute(sa.select(ApiToken.last_used_at))).scalar_one()

    assert await last_used() is None
    batches = database.writer.batches
    await verify(database, token.secret, "calendar", now)
    assert await last_used() == now
    assert database.writer.batches == batches + 1
    for seconds in (1, 30, 59):
        await verify(database, token.secret, "calendar", now + timedelta(seconds=seconds))
    assert database.writer.batches == batches + 1  # no write for those
    assert await last_used() == now
    later = now + timedelta(minutes=1)
    await verify(database, token.secret, "calendar", later)
    assert await last_used() == later
