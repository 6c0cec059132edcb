"""The failure matrix through the whole send path: outbox row → Dispatcher → real adapter →
fake vendor on loopback, on SQLite and PostgreSQL.

Whatever the vendor does, every message must end in exactly one final state — sent (the
vendor holds exactly one copy) or dead (the vendor holds none) — and nothing the vendor
recorded as accepted is ever sent a second time.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from fakes.kakao_event import BOT_ID, EVENT_NAME, REST_API_KEY, FakeKakaoEvent
from fakes.solapi import FakeSolapi
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from support.outbox import CONFIG, Sleeps, add_message, add_shop, message, row

from core.clock import FrozenClock
from core.db import Database
from core.outbox import OutboxRequest, enqueue
from providers.base import Provider
from providers.kakao_event import KakaoEventProvider
from providers.registry import Providers
from providers.solapi import SolapiProvider
from providers.twilio import TwilioProvider
from scheduler.dispatch import Dispatcher

CUSTOMER = "+821022223333"
USER_KEY = "7d1c0b7e9a2f4e3d8c6b5a4f3e2d1c0b"  # the Kakao customer's botUserKey
ROUNDS = 8  # ticks; each moves the clock past any lease and backoff


@dataclass(frozen=True)
class Case:
    vendor: str  # solapi | twilio | kakao_event
    script: Callable[[Any], None]  # sets the fake up to misbehave
    final: str  # the outbox row's final status
    copies: int  # messages the vendor holds for our row at the end
    # dead rows: the vendor has it but cannot say so (no lookup by our ref); a person
    # decides whether to send again
    unsure: bool = False


def _solapi(mode: str, record: bool = False) -> Callable[[Any], None]:
    return lambda fake: fake.fail_next(mode, record=record)


def _twilio(kind: str) -> Callable[[Any], None]:
    return lambda fake: fake.fail_next(kind)


CASES = {
    "solapi-timeout-before-read": Case("solapi", _solapi("hang_before_read"), "sent", 1),
    "solapi-timeout-after-record": Case("solapi", _solapi("hang_after_record"), "sent", 1),
    "solapi-reset": Case("solapi", _solapi("reset"), "sent", 1),
    "solapi-429": Case("solapi", _solapi("429"), "sent", 1),
    "solapi-500": Case("solapi", _solapi("500"), "sent", 1),
    "solapi-503-after-record": Case("solapi", _solapi("503", record=True), "sent", 1),
    "solapi-malformed": Case("solapi", _solapi("bad_json"), "sent", 1),
    "solapi-twice-500": Case("solapi", lambda f: f.fail_next("500", times=2), "sent", 1),
    "solapi-opted-out": Case(
        "solapi", lambda f: f.fail_recipient("01022223333", "1061", "수신거부"), "dead", 0
    ),
    "solapi-bad-number": Case(
        "solapi", lambda f: f.fail_recipient("01022223333", "3059", "변작 의심"), "dead", 0
    ),
    "twilio-timeout-before-record": Case("twilio", _twilio("timeout_before_record"), "sent", 1),
    "twilio-timeout-after-record": Case("twilio", _twilio("timeout_after_record"), "sent", 1),
    "twilio-reset": Case("twilio", _twilio("reset"), "sent", 1),
    "twilio-429": Case("twilio", _twilio("429"), "sent", 1),
    "twilio-500": Case("twilio", _twilio("500"), "sent", 1),
    "twilio-503": Case("twilio", _twilio("503"), "sent", 1),
    "twilio-malformed": Case("twilio", _twilio("malformed"), "sent", 1),
    "twilio-opted-out": Case("twilio", lambda f: f.opted_out.add(CUSTOMER), "dead", 0),
    "twilio-auth": Case("twilio", lambda f: setattr(f, "auth_token", "rotated"), "dead", 0),
    "kakao-timeout-before-record": Case(
        "kakao_event", _twilio("timeout_before_record"), "dead", 0, True
    ),
    "kakao-timeout-after-record": Case(
        "kakao_event", _twilio("timeout_after_record"), "dead", 1, True
    ),
    "kakao-reset": Case("kakao_event", _twilio("reset"), "dead", 1, True),
    "kakao-malformed": Case("kakao_event", _twilio("malformed"), "dead", 1, True),
    "kakao-429": Case("kakao_event", _twilio("429"), "sent", 1),
    "kakao-500": Case("kakao_event", _twilio("500"), "sent", 1),
    "kakao-503": Case("kakao_event", _twilio("503"), "sent", 1),
    "kakao-not-a-friend-refused": Case("kakao_event", lambda f: f.refused.add(USER_KEY), "dead", 0),
    "kakao-wrong-key": Case(
        "kakao_event", lambda f: setattr(f, "rest_api_key", "rotated"), "dead", 0
    ),
}


class Vendor:
    """A fake vendor server and our adapter pointed at it."""

    def __init__(self, name: str, clock: FrozenClock) -> None:
        self.name = name
        self.fake: FakeSolapi | FakeTwilio | FakeKakaoEvent = {
            "solapi": lambda: FakeSolapi(now=clock.now),
            "twilio": lambda: FakeTwilio(hang_seconds=2.0),
            "kakao_event": lambda: FakeKakaoEvent(hang_seconds=2.0),
        }[name]()
        self.server = TestServer(self.fake.app, host="127.0.0.1")
        self.clock = clock

    async def start(self, session: aiohttp.ClientSession) -> Provider:
        await self.server.start_server()
        url = str(self.server.make_url("")).rstrip("/")
        if isinstance(self.fake, FakeSolapi):
            return SolapiProvider(
                {
                    "api_key": self.fake.api_key,
                    "api_secret": self.fake.api_secret,
                    "sender": "02-1234-5678",
                    "base_url": url,
                    "timeout": 0.3,
                },
                session,
                clock=self.clock.now,
            )
        if isinstance(self.fake, FakeKakaoEvent):
            return KakaoEventProvider(
                {
                    "rest_api_key": REST_API_KEY,
                    "bot_id": BOT_ID,
                    "event_name": EVENT_NAME,
                    "base_url": url,
                    "timeout_seconds": 0.3,
                },
                session,
            )
        return TwilioProvider(
            {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": "+14155550199",
                "base_url": url,
                "timeout": 0.3,
                "rate_per_second": 1000.0,
            },
            session,
        )

    def copies(self, ref: str) -> int:
        if isinstance(self.fake, FakeSolapi):
            return self.fake.refs().count(ref)
        if isinstance(self.fake, FakeKakaoEvent):
            return len(self.fake.sent_to(USER_KEY))
        return len(self.fake.sent_to(CUSTOMER))

    async def close(self) -> None:
        self.fake.release()
        await self.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_every_failure_ends_in_one_state_without_a_duplicate(
    case: str, database: Database, clock: FrozenClock, session: aiohttp.ClientSession
) -> None:
    spec = CASES[case]
    vendor = Vendor(spec.vendor, clock)
    provider = await vendor.start(session)
    try:
        now = clock.now()
        shop = await add_shop(database, now)
        message_id = await add_message(database, shop, now)
        outbox_id = await database.write(
            lambda conn: enqueue(
                conn,
                OutboxRequest(
                    shop_id=shop,
                    purpose="reply",
                    provider=spec.vendor,
                    recipient={
                        "phone": CUSTOMER,
                        "kakao_user_key": USER_KEY,
                        "kakao_key_type": "botUserKey",
                    },
                    payload={"text": "내일 10시에 방문드릴게요"},
                    idempotency_key="matrix",
                    now=now,
                    message_id=message_id,
                ),
            )
        )
        assert outbox_id is not None
        dispatcher = Dispatcher(
            database,
            Providers({spec.vendor: provider}),
            clock,
            CONFIG,
            owner_id="matrix",
            rng=random.Random(7),
            sleep=Sleeps(),
            send_timeout=5.0,
        )
        spec.script(vendor.fake)

        states = []
        for _ in range(ROUNDS):
            await dispatcher.tick()
            states.append((await row(database, outbox_id))["status"])
            if states[-1] in ("sent", "dead"):
                break
            clock.advance(seconds=CONFIG.backoff_max_seconds + CONFIG.lease_seconds + 1)

        final = await row(database, outbox_id)
        assert final["status"] == spec.final, states
        assert vendor.copies(str(outbox_id)) == spec.copies
        sent_message = await message(database, message_id)
        if spec.final == "sent":
            assert sent_message["status"] == "sent"
            assert sent_message["provider_message_id"] == final["provider_ref"]
            assert final["provider_ref"]
        else:
            assert sent_message["status"] == "failed"
            assert final["last_error"]
            assert ("cannot tell" in final["last_error"]) is spec.unsure
        # Ticking on changes nothing: a final state is final.
        clock.advance(hours=1)
        await dispatcher.tick()
        assert (await row(database, outbox_id))["status"] == spec.final
        assert vendor.copies(str(outbox_id)) == spec.copies
    finally:
        await vendor.close()
