"""Shared fixtures: a database on SQLite *and* PostgreSQL, settings, a frozen clock.

PostgreSQL tests use DANGOL_TEST_PG_URL (make test sets it for 127.0.0.1:5432). When the
server cannot be reached they skip — unless DANGOL_TEST_REQUIRE_PG=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core import config as config_mod
from core.clock import FrozenClock
from core.db import Database, upgrade
from providers.fake import FakeProvider
from providers.registry import default_registry

KST = ZoneInfo("Asia/Seoul")
PG_URL = os.environ.get("DANGOL_TEST_PG_URL", "")
REQUIRE_PG = os.environ.get("DANGOL_TEST_REQUIRE_PG") == "1"
FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
if not FIXTURES.exists():  # a clone whose shared/ sits elsewhere keeps a copy in tests/
    FIXTURES = Path(__file__).parent / "payloads"

os.environ.setdefault("DANGOL_TEST_SKILL_SECRET", "test-skill-secret")

# The test double is a provider only here: `[providers.fake]` in a test's settings works,
# in a real config.toml it is an unknown provider.
default_registry.register(FakeProvider)


def _pg_reachable() -> bool:
    if not PG_URL:
        return False
    u = urlparse(PG_URL.replace("+asyncpg", ""))
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=1):
            return True
    except OSError:
        return False


def _need_pg() -> None:
    if _pg_reachable():
        return
    reason = f"PostgreSQL not reachable at DANGOL_TEST_PG_URL={PG_URL!r}"
    if REQUIRE_PG:
        pytest.fail(reason)
    pytest.skip(reason)


def kst(*args: int) -> datetime:
    """kst(2026, 11, 23, 10, 0) → an aware datetime in Korea."""
    return datetime(*args, tzinfo=KST)  # type: ignore[misc]


@pytest.fixture
def clock() -> FrozenClock:
    # Monday 23 November 2026, 10:00 in Seoul: the shop is open.
    return FrozenClock(kst(2026, 11, 23, 10, 0))


def shop_table(**overrides: Any) -> dict[str, Any]:
    shop: dict[str, Any] = {
        "slug": "hanbit",
        "name": "한빛설비",
        "phone": "02-1234-5678",
        "address": "서울시 마포구 월드컵로 1",
        "timezone": "Asia/Seoul",
        "hours": {
            "mon": "09:00-18:00",
            "tue": "09:00-18:00",
            "wed": "09:00-18:00",
            "thu": "09:00-18:00",
            "fri": "09:00-18:00",
            "sat": "09:00-13:00",
            "sun": "closed",
            "closed_on_public_holidays": True,
        },
        "faq": [
            {
                "id": "price",
                "label": "출장비 안내",
                "keywords": ["출장비", "가격", "얼마"],
                "answer": "출장비는 2만원이에요. 작업비는 현장에서 확인 후 안내드려요.",
            },
        ],
        "kakao": {
            "bot_id": "66a1e9d0e4b0a1b2c3d4e000",
            "skill_secret_env": "DANGOL_TEST_SKILL_SECRET",
        },
        "owner": {"name": "김사장", "phone": "010-2222-3333", "notify_via": ["console"]},
        "journey": {
            "review_links": {"네이버 플레이스": "https://m.place.naver.com/place/1/review"}
        },
        "services": [
            {
                "key": "aircon",
                "name": "에어컨 청소",
                "duration_minutes": 120,
                "prepare": "실외기 주변을 비워 주세요.",
                "warranty": "무상 A/S 6개월",
                "survey_after_days": 7,
                "inspection_months": 12,
                "aftercare": [
                    {"after_days": 0, "text": "처음 켤 때 냄새나 물샘이 없는지 봐 주세요."},
                    {"after_days": 14, "text": "필터는 2주마다 씻어 주세요."},
                ],
            },
            {
                "key": "lawn",
                "name": "잔디 관리",
                "duration_minutes": 240,
                "survey_after_days": 14,
                "aftercare": [
                    {"after_days": 0, "text": "2주간 매일 물을 주세요."},
                    {"after_days": 3, "text": "뿌리가 내렸는지 확인해 주세요."},
                ],
            },
        ],
    }
    shop.update(overrides)
    return shop


def settings_dict(db_url: str = "sqlite+aiosqlite:///:memory:", **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "server": {"simulator": True, "public_url": "http://127.0.0.1:8080"},
        "database": {"url": db_url},
        "shops": [shop_table()],
    }
    data.update(sections)
    return data


def make_settings(
    db_url: str = "sqlite+aiosqlite:///:memory:", **sections: Any
) -> config_mod.Settings:
    return config_mod.parse(settings_dict(db_url, **sections), "test.toml")


@asynccontextmanager
async def postgres_schema(revision: str = "head") -> AsyncIterator[tuple[str, str]]:
    """A fresh PostgreSQL schema migrated to `revision`, dropped after: (url, schema)."""
    _need_pg()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await upgrade(PG_URL, revision, search_path=schema)
        yield PG_URL, schema
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, str | None]]:
    """A migrated, empty database: (url, search_path)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'dangol.db'}"
        await upgrade(url)
        yield url, None
        return
    async with postgres_schema() as found:
        yield found


@pytest.fixture
async def pg_url() -> AsyncIterator[tuple[str, str]]:
    """A migrated, empty PostgreSQL schema, for what only PostgreSQL has (LISTEN/NOTIFY)."""
    async with postgres_schema() as found:
        yield found


Client = TestClient[web.Request, web.Application]


@pytest.fixture
def make_client(
    db_url: tuple[str, str | None], clock: FrozenClock, aiohttp_client: Any
) -> Callable[..., Awaitable[Client]]:
    """Builds the real app (create_app) on the test database; sections override settings."""
    url, schema = db_url

    async def make(**sections: Any) -> Client:
        from bot.app import create_app

        database = {"url": url, **({"schema": schema} if schema else {})}
        settings = make_settings(url, database=database, **sections)
        client: Client = await aiohttp_client(create_app(settings, clock=clock))
        return client

    return make


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[Client]]) -> Client:
    return await make_client()


@pytest.fixture
async def database(db_url: tuple[str, str | None]) -> AsyncIterator[Database]:
    url, schema = db_url
    db = Database(url, search_path=schema)
    await db.start()
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with tiny parameters: the same code paths, a hundred times faster."""
    from argon2 import PasswordHasher

    from bot import accounts

    monkeypatch.setattr(
        accounts, "hasher", PasswordHasher(time_cost=1, memory_cost=256, parallelism=1)
    )


@pytest.fixture
async def owner(client: Client, cheap_hasher: None) -> Client:
    """The test app, signed in to the console as the shop's owner (CSRF token on .csrf)."""
    from support.console import add_account, sign_in

    await add_account(client)
    client.csrf = await sign_in(client)  # type: ignore[attr-defined]
    return client
