"""An owner's photo reply, end to end: outbox row → build_outgoing → the photo resolver
(bot/photos/) → SOLAPI (MMS) / Twilio (MediaUrl) fakes on loopback, or a link in the
text for providers that carry no pictures. SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import io
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from conftest import kst
from fakes.solapi import FakeSolapi
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from PIL import Image
from sqlalchemy.engine import Connection

from bot.photos.cleaning import MMS_MAX_BYTES, prepare
from bot.photos.outbox import OutboxPhotos
from bot.photos.records import attachment
from bot.photos.store import PhotoStore
from core.clock import FrozenClock
from core.config import Delivery, OutboxConfig
from core.db import Database
from core.models import Conversation, Customer, CustomerIdentity, Message, Shop
from core.outbox import OUTBOX
from core.replies import owner_reply
from providers.base import Provider
from providers.console import ConsoleProvider
from providers.registry import Providers
from providers.solapi import SolapiProvider
from providers.twilio import TwilioProvider
from scheduler.dispatch import Dispatcher

NOW = kst(2026, 11, 23, 10, 0)
PUBLIC = "https://hanbit.example"
KOREAN_PHONE = "+821012345678"
US_PHONE = "+14155550123"
TEXT = "견적서 사진 보내드려요. 확인 부탁드립니다."
CONFIG = OutboxConfig(
    tick_seconds=1.0,
    batch_size=50,
    lease_seconds=60,
    max_attempts=3,
    backoff_base_seconds=10.0,
    backoff_max_seconds=600.0,
)


@functools.cache
def camera_photo() -> bytes:
    """A 3000×2000 photo of pure noise (JPEG's worst case), stored the way uploads are:
    2048×1365 and megabytes — far over the MMS limits, so for_mms must work for it."""
    noise = random.Random(3).randbytes(3000 * 2000 * 3)
    raw = io.BytesIO()
    Image.frombytes("RGB", (3000, 2000), noise).save(raw, "JPEG", quality=95)
    stored = prepare(raw.getvalue(), max_bytes=30_000_000, max_pixels=40_000_000)
    assert len(stored.jpeg) > 4 * MMS_MAX_BYTES
    return stored.jpeg


async def no_sleep(seconds: float) -> None:
    return None


@dataclass
class Reply:
    message_id: int
    outbox_id: int
    stored_name: str


class World:
    """One shop, a photo store, and the dispatcher the app would build."""

    def __init__(self, database: Database, clock: FrozenClock, store: PhotoStore) -> None:
        self.database, self.clock, self.store = database, clock, store
        self.shop_id = 0

    async def start(self) -> None:
        def unit(conn: Connection) -> int:
            return int(
                conn.execute(
                    sa.insert(Shop)
                    .values(
                        slug="hanbit", name="한빛설비", owner_status="available", created_at=NOW
                    )
                    .returning(Shop.id)
                ).scalar_one()
            )

        self.shop_id = await self.database.write(unit)

    async def reply(
        self,
        delivery: Delivery,
        *,
        channel: str = "sms",
        phone: str | None = KOREAN_PHONE,
        kakao: str | None = None,
        stored_name: str | None = None,
        text: str = TEXT,
    ) -> Reply:
        """A customer's conversation and the owner's photo reply to it (as the console
        would write it): the photo stored, the message and its outbox row."""
        name = stored_name or self.store.save(camera_photo())
        shop = self.shop_id

        def conversation(conn: Connection) -> int:
            customer = conn.execute(
                sa.insert(Customer)
                .values(shop_id=shop, tier="bronze", tags=[], notes="", created_at=NOW)
                .returning(Customer.id)
            ).scalar_one()
            for kind, value in (("phone", phone), ("kakao_bot_user", kakao)):
                if value:
                    conn.execute(
                        sa.insert(CustomerIdentity).values(
                            shop_id=shop,
                            customer_id=customer,
                            kind=kind,
                            value=value,
                            created_at=NOW,
                        )
                    )
            return int(
                conn.execute(
                    sa.insert(Conversation)
                    .values(
                        shop_id=shop,
                        customer_id=customer,
                        channel=channel,
                        status="open",
                        complaint=False,
                        unread_count=1,
                        last_message_at=NOW,
                        created_at=NOW,
                    )
                    .returning(Conversation.id)
                ).scalar_one()
            )

        conv = await self.database.write(conversation)
        photo = attachment(1, name, 2048, 1365)
        sent = await self.database.write(
            owner_reply(shop, conv, text, delivery, NOW, attachments=[photo])
        )
        assert sent.outbox_id is not None
        return Reply(sent.message_id, sent.outbox_id, name)

    def dispatcher(
        self, providers: dict[str, Provider], public_url: str | None = PUBLIC
    ) -> Dispatcher:
        return Dispatcher(
            self.database,
            Providers(providers),
            self.clock,
            CONFIG,
            owner_id="mms-test",
            rng=random.Random(1),
            sleep=no_sleep,
            photos=OutboxPhotos(self.store, public_url),
        )

    async def outbox(self, outbox_id: int) -> sa.RowMapping:
        async with self.database.read() as conn:
            found = await conn.execute(sa.select(OUTBOX).where(OUTBOX.c.id == outbox_id))
            return found.mappings().one()

    async def message(self, message_id: int) -> sa.RowMapping:
        async with self.database.read() as conn:
            found = await conn.execute(sa.select(Message.__table__).where(Message.id == message_id))
            return found.mappings().one()


@pytest.fixture
async def world(database: Database, clock: FrozenClock, tmp_path: Path) -> World:
    made = World(database, clock, PhotoStore(tmp_path / "uploads"))
    await made.start()
    return made


@dataclass
class Vendors:
    solapi_fake: FakeSolapi
    solapi: SolapiProvider
    twilio_fake: FakeTwilio
    twilio: TwilioProvider


@pytest.fixture
async def vendors(aiohttp_server: Any) -> AsyncIterator[Vendors]:
    now = NOW.astimezone(UTC)
    solapi_fake = FakeSolapi(now=lambda: now)
    solapi_server = await aiohttp_server(solapi_fake.app, host="127.0.0.1")
    twilio_fake = FakeTwilio()
    twilio_server = TestServer(twilio_fake.app, host="127.0.0.1")
    await twilio_server.start_server()
    async with aiohttp.ClientSession() as session:
        solapi = SolapiProvider(
            {
                "api_key": solapi_fake.api_key,
                "api_secret": solapi_fake.api_secret,
                "sender": "0212345678",
                "base_url": str(solapi_server.make_url("")).rstrip("/"),
                "pf_id": "KA01PF2603090000000000000000001",
                "timeout": 2.0,
            },
            session,
            clock=lambda: now,
        )
        twilio = TwilioProvider(
            {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": "+14155550199",
                "base_url": str(twilio_server.make_url("")),
                "rate_per_second": 1000.0,
            },
            session,
        )
        yield Vendors(solapi_fake, solapi, twilio_fake, twilio)
        solapi_fake.release()
        twilio_fake.release()
    await twilio_server.close()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


# --------------------------------------------------------------------------- SOLAPI


async def test_a_photo_reply_reaches_an_sms_customer_as_mms(world: World, vendors: Vendors) -> None:
    reply = await world.reply(Delivery(sms="solapi"))
    dispatcher = world.dispatcher({"solapi": vendors.solapi})

    assert await dispatcher.tick() == 1

    fake = vendors.solapi_fake
    ((file_id, uploaded),) = fake.files.items()
    assert uploaded["type"] == "MMS"
    assert len(uploaded["data"]) <= MMS_MAX_BYTES
    picture = opened(uploaded["data"])
    assert picture.width <= 1500
    assert picture.height <= 1440
    assert picture.width < 2048  # shrunk from what was stored
    assert not picture.getexif()
    (mms,) = fake.mms()
    assert mms["imageId"] == file_id
    assert mms["text"] == TEXT
    assert "subject" not in mms  # a short caption needs no title repeating it
    assert mms["to"] == "01012345678"
    assert mms["customFields"] == {"ourId": str(reply.outbox_id)}

    item = await world.outbox(reply.outbox_id)
    assert (item["status"], item["provider_ref"]) == ("sent", mms["messageId"])
    message = await world.message(reply.message_id)
    assert (message["status"], message["path"], message["provider"]) == ("sent", "mms", "solapi")
    # The MMS copy was made once, next to the original, and is what went out.
    copy = world.store.mms_path_of(reply.stored_name)
    assert copy.read_bytes() == uploaded["data"]
    assert (world.store.root / reply.stored_name).read_bytes() == camera_photo()


async def test_a_failed_upload_is_retried_and_the_mms_goes_once(
    world: World, vendors: Vendors
) -> None:
    reply = await world.reply(Delivery(sms="solapi"))
    vendors.solapi_fake.fail_upload_next("503")
    await world.dispatcher({"solapi": vendors.solapi}).tick()
    # 503 on the upload: nothing was sent, so it is transient and retried within the call.
    assert vendors.solapi_fake.uploads == 2
    assert len(vendors.solapi_fake.mms()) == 1
    assert (await world.outbox(reply.outbox_id))["status"] == "sent"


async def test_a_long_photo_reply_is_an_mms_with_a_subject(world: World, vendors: Vendors) -> None:
    text = "방문 견적 안내\n" + "교체할 부품과 공임을 사진으로 정리했어요. " * 20
    await world.reply(Delivery(sms="solapi"), text=text)
    await world.dispatcher({"solapi": vendors.solapi}).tick()
    (mms,) = vendors.solapi_fake.mms()
    assert mms["subject"] == "방문 견적 안내"
    assert mms["text"] == text


async def test_alimtalk_carries_no_picture(world: World, vendors: Vendors) -> None:
    """The AlimTalk reply notice is an approved template: no picture, no upload."""
    delivery = Delivery(alimtalk="solapi", alimtalk_template="KA01TP1", sms="solapi")
    reply = await world.reply(delivery, channel="kakao", kakao="bot-user-1")
    await world.dispatcher({"solapi": vendors.solapi}).tick()
    fake = vendors.solapi_fake
    assert fake.uploads == 0
    (sent,) = fake.messages.values()
    assert sent["type"] == "ATA"
    assert "imageId" not in sent
    assert (await world.outbox(reply.outbox_id))["status"] == "sent"


# --------------------------------------------------------------------------- Twilio


async def test_twilio_fetches_the_photo_by_its_public_url(world: World, vendors: Vendors) -> None:
    reply = await world.reply(Delivery(sms="twilio"), phone=US_PHONE)
    await world.dispatcher({"twilio": vendors.twilio}).tick()
    (form,) = vendors.twilio_fake.requests
    assert ("MediaUrl", f"{PUBLIC}/p/{reply.stored_name}") in form
    assert ("Body", TEXT) in form
    message = await world.message(reply.message_id)
    assert (message["status"], message["path"]) == ("sent", "mms")


@pytest.mark.parametrize("public_url", [None, "http://127.0.0.1:8080"])
async def test_without_a_public_address_twilio_refuses_and_solapi_still_sends(
    world: World, vendors: Vendors, public_url: str | None
) -> None:
    abroad = await world.reply(Delivery(sms="twilio"), phone=US_PHONE)
    home = await world.reply(Delivery(sms="solapi"), stored_name=abroad.stored_name)
    providers: dict[str, Provider] = {"twilio": vendors.twilio, "solapi": vendors.solapi}
    await world.dispatcher(providers, public_url=public_url).tick()

    # Twilio cannot fetch a picture nobody outside can open: refused, not sent without it.
    item = await world.outbox(abroad.outbox_id)
    assert item["status"] == "dead"
    assert "server.public_url" in item["last_error"]
    assert vendors.twilio_fake.requests == []
    assert (await world.message(abroad.message_id))["status"] == "failed"
    # SOLAPI uploads the bytes: no URL needed.
    assert (await world.outbox(home.outbox_id))["status"] == "sent"
    assert len(vendors.solapi_fake.mms()) == 1


# --------------------------------------------------------------------------- no pictures


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        (PUBLIC, TEXT + "\n\n" + PUBLIC + "/p/{name}"),
        ("https://hanbit.example/dangol/", TEXT + "\n\nhttps://hanbit.example/dangol/p/{name}"),
        ("http://127.0.0.1:8080", TEXT),  # a link nobody outside could open is left out
    ],
)
async def test_a_provider_without_pictures_gets_the_link_in_the_text(
    world: World, public_url: str, expected: str
) -> None:
    """The Kakao event path (here the console provider, which carries no pictures)."""
    kakao = ConsoleProvider({"show_text": False})
    reply = await world.reply(
        Delivery(event_api="kakao_event"), channel="kakao", phone=None, kakao="bot-user-1"
    )
    await world.dispatcher({"kakao_event": kakao}, public_url=public_url).tick()
    (sent,) = kakao.sent
    assert sent.text == expected.format(name=reply.stored_name)
    assert (sent.image_path, sent.image_url) == (None, None)
    assert not world.store.mms_path_of(reply.stored_name).exists()  # no MMS copy needed
    assert (await world.outbox(reply.outbox_id))["status"] == "sent"


# --------------------------------------------------------------------------- a missing file


@pytest.mark.parametrize("path", ["mms", "link"])
async def test_a_photo_whose_file_is_gone_fails_the_reply_with_a_reason(
    world: World, vendors: Vendors, path: str
) -> None:
    console = ConsoleProvider({"show_text": False})
    if path == "mms":
        reply = await world.reply(Delivery(sms="solapi"))
    else:
        reply = await world.reply(
            Delivery(event_api="kakao_event"), channel="kakao", phone=None, kakao="bot-user-1"
        )
    world.store.remove(reply.stored_name)
    providers: dict[str, Provider] = {"solapi": vendors.solapi, "kakao_event": console}
    await world.dispatcher(providers).tick()

    item = await world.outbox(reply.outbox_id)
    assert item["status"] == "dead"
    assert item["attempts"] == 1  # not retried: the file will not come back
    assert "사진 파일을 찾을 수 없어" in item["last_error"]
    message = await world.message(reply.message_id)
    assert message["status"] == "failed"
    assert "사진을 다시 올려" in message["error"]
    assert vendors.solapi_fake.uploads == 0
    assert vendors.solapi_fake.messages == {}
    assert list(console.sent) == []
