"""Photos customers send by MMS (Twilio): fetched with the account's credentials from a fake
Twilio on loopback, cleaned like an owner's upload, kept, and shown in the console — on
SQLite and PostgreSQL. What cannot be fetched is said, never silently dropped."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from conftest import Client, shop_table
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, inbound_sms_form, signed_request
from PIL import Image
from support.console import add_account, sign_in
from support.photos import phone_photo
from support.settle import settled
from support.slow_database import HeldWrites
from tenacity import wait_none

from bot import customer_photos, keys
from bot.live import Event, Subscription, status_event
from core.models import Message, OutboxItem, Photo

pytestmark = pytest.mark.usefixtures("cheap_hasher")

PUBLIC = "http://127.0.0.1:8080"
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def twilio(aiohttp_server: Any) -> AsyncIterator[tuple[FakeTwilio, TestServer]]:
    fake = FakeTwilio()
    server = await aiohttp_server(fake.app)
    yield fake, server
    fake.release()


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without the seconds between them (the count is what is tested)."""
    monkeypatch.setattr(customer_photos, "RETRY_WAIT", wait_none())


async def shop_client(
    make_client: MakeClient,
    server: TestServer,
    tmp_path: Path,
    token: str = AUTH_TOKEN,
    budget_ms: int = 1500,
) -> Client:
    client = await make_client(
        server={"public_url": PUBLIC, "skill_budget_ms": budget_ms},
        storage={"path": str(tmp_path / "uploads")},
        providers={
            "twilio": {
                "account_sid": ACCOUNT_SID,
                "auth_token": token,
                "from_number": "+14155550199",
                "base_url": str(server.make_url("")).rstrip("/"),
            }
        },
        shops=[shop_table(delivery={"sms": "twilio"})],
    )
    await settled(client.app)  # its start-up look for unfetched photos is over
    return client


async def mms(client: Client, body: str, media: list[tuple[str, str]]) -> dict[str, str]:
    """The customer's MMS arrives, signed as Twilio signs it; returns the form."""
    form = inbound_sms_form(body, media=media)
    headers, data = signed_request(PUBLIC + "/hooks/twilio/hanbit/sms", form)
    resp = await client.post("/hooks/twilio/hanbit/sms", data=data, headers=headers)
    assert resp.status == 200
    return form


async def inbound(client: Client) -> Any:
    assert client.app is not None
    async with client.app[keys.DATABASE].read() as conn:
        stmt = sa.select(Message).where(Message.direction == "in")
        (row,) = (await conn.execute(stmt)).all()
    return row


async def photos(client: Client) -> list[Any]:
    assert client.app is not None
    async with client.app[keys.DATABASE].read() as conn:
        return list((await conn.execute(sa.select(Photo).order_by(Photo.id))).all())


async def console_page(client: Client, conversation_id: int) -> str:
    await add_account(client)
    await sign_in(client)
    resp = await client.get(f"/console/c/{conversation_id}")
    assert resp.status == 200
    return await resp.text()


def media_url(
    twilio: tuple[FakeTwilio, TestServer], data: bytes | None = None, kind: str = "image/jpeg"
) -> str:
    """An attachment kept at the fake Twilio, as the MediaUrl its webhook carries (by
    default a phone's photo, with its location in it)."""
    fake, server = twilio
    return str(server.make_url(fake.add_media(phone_photo() if data is None else data, kind)))


def stored_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "uploads"
    return sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else []


# --------------------------------------------------------------------------- tests


async def test_a_customers_photo_is_fetched_cleaned_kept_and_shown(
    make_client: MakeClient, twilio: tuple[FakeTwilio, TestServer], tmp_path: Path
) -> None:
    fake, server = twilio
    client = await shop_client(make_client, server, tmp_path)
    url = media_url(twilio)
    await mms(client, "여기 물 새는 곳이에요", [(url, "image/jpeg")])
    await settled(client.app)

    message = await inbound(client)
    (photo,) = await photos(client)
    assert (photo.message_id, photo.conversation_id) == (message.id, message.conversation_id)
    assert photo.uploaded_by is None
    assert message.payload["media"] == [{"photo_id": photo.id}]
    (shown,) = message.payload["attachments"]
    assert shown["photo_id"] == photo.id
    assert message.payload["extra"]["media_urls"] == url  # the link is kept as it came

    # Cleaned like an owner's upload: turned upright, no location or camera left in it.
    (kept,) = stored_files(tmp_path)
    image = Image.open(io.BytesIO(kept.read_bytes()))
    assert image.size == (300, 400)
    assert not image.getexif()
    assert fake.media_gets == 1

    page = await console_page(client, message.conversation_id)
    assert f'src="/console/photos/{photo.id}" alt="고객이 보낸 사진"' in page
    assert "받아오는 중" not in page
    shown_photo = await client.get(f"/console/photos/{photo.id}")
    assert shown_photo.status == 200
    assert await shown_photo.read() == kept.read_bytes()


async def test_what_cannot_be_fetched_is_said_with_its_reason(
    make_client: MakeClient, twilio: tuple[FakeTwilio, TestServer], tmp_path: Path
) -> None:
    fake, server = twilio
    client = await shop_client(make_client, server, tmp_path)
    video = media_url(twilio, b"\0\0\0 ftypmp42", "video/mp4")
    gone = media_url(twilio)
    fake.media.clear()  # deleted at Twilio before we asked
    broken = media_url(twilio, b"not a picture at all")
    await mms(client, "", [(video, "video/mp4"), (gone, "image/jpeg"), (broken, "image/jpeg")])
    await settled(client.app)

    message = await inbound(client)
    errors = [m["error"] for m in message.payload["media"]]
    assert errors[0] == "사진이 아닌 첨부(video/mp4)는 받아오지 않아요"
    assert errors[1] == "Twilio에 첨부가 없어요 (지워졌어요)"
    assert "사진" in errors[2]  # prepare()'s own words: not a photo we can read
    assert message.payload["attachments"] == []
    assert await photos(client) == []
    assert stored_files(tmp_path) == []
    assert fake.media_gets == 2  # the video is never downloaded

    assert client.app is not None
    async with client.app[keys.DATABASE].read() as conn:
        stmt = sa.select(OutboxItem.payload).where(OutboxItem.purpose == "owner_notification")
        (notice,) = (await conn.execute(stmt)).scalars()
    assert notice["text"].endswith('고객 #1: "(첨부 3개)"')  # not an empty quote

    page = await console_page(client, message.conversation_id)
    assert "첨부를 받지 못했어요: 사진이 아닌 첨부(video/mp4)는 받아오지 않아요" in page
    assert "첨부를 받지 못했어요: Twilio에 첨부가 없어요 (지워졌어요)" in page
    inbox = await (await client.get("/console/")).text()
    assert "(첨부)" in inbox  # a message of attachments alone is not "no messages"
    assert "메시지 없음" not in inbox


async def test_twilio_trouble_is_retried_and_wrong_credentials_are_not(
    make_client: MakeClient, twilio: tuple[FakeTwilio, TestServer], tmp_path: Path
) -> None:
    fake, server = twilio
    client = await shop_client(make_client, server, tmp_path)
    fake.media_failures.extend([500, 503])
    url = media_url(twilio)
    await mms(client, "사진 보내요", [(url, "image/jpeg")])
    await settled(client.app)
    assert len(await photos(client)) == 1
    assert fake.media_gets == 3

    other = tmp_path / "other"
    other.mkdir()
    wrong = await shop_client(make_client, server, other, token="not-the-token")
    url = media_url(twilio)
    form = inbound_sms_form("또 보내요", media=[(url, "image/jpeg")])
    headers, data = signed_request(PUBLIC + "/hooks/twilio/hanbit/sms", form, "not-the-token")
    assert (await wrong.post("/hooks/twilio/hanbit/sms", data=data, headers=headers)).status == 200
    await settled(wrong.app)
    async with wrong.app[keys.DATABASE].read() as conn:
        last = (await conn.execute(sa.select(Message).order_by(Message.id.desc()))).first()
    assert last is not None
    assert last.payload["media"] == [
        {"error": "Twilio 인증 실패: account_sid / auth_token을 확인하세요"}
    ]
    assert fake.media_gets == 4  # wrong credentials are not retried: asked once, not five times


async def test_a_resend_fetches_nothing_twice(
    make_client: MakeClient, twilio: tuple[FakeTwilio, TestServer], tmp_path: Path
) -> None:
    fake, server = twilio
    client = await shop_client(make_client, server, tmp_path)
    url = media_url(twilio)
    form = inbound_sms_form("사진이요", media=[(url, "image/jpeg")])
    headers, data = signed_request(PUBLIC + "/hooks/twilio/hanbit/sms", form)
    for _ in range(2):  # Twilio retried its webhook
        assert (await client.post("/hooks/twilio/hanbit/sms", data=data, headers=headers)).ok
    await settled(client.app)
    assert len(await photos(client)) == 1
    assert fake.media_gets == 1


async def test_two_fetches_of_one_message_keep_one_copy(
    make_client: MakeClient,
    twilio: tuple[FakeTwilio, TestServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, server = twilio
    monkeypatch.setattr("bot.webhooks.twilio.fetch_photos", _not_now)
    client = await shop_client(make_client, server, tmp_path)
    url = media_url(twilio)
    await mms(client, "사진이요", [(url, "image/jpeg")])
    message = await inbound(client)
    assert client.app is not None
    hub = client.app[keys.LIVE]
    with hub.subscribe(message.shop_id) as console:
        await asyncio.gather(
            customer_photos.fetch_photos(client.app, message.id),
            customer_photos.fetch_photos(client.app, message.id),
        )
        heard = await statuses_until_now(console)
    assert fake.media_gets == 2  # both downloaded…
    (photo,) = await photos(client)  # …one recorded…
    (kept,) = stored_files(tmp_path)  # …and the other's copy removed
    assert kept.name == photo.stored_name
    assert (await inbound(client)).payload["media"] == [{"photo_id": photo.id}]
    # The console showing the message refreshes it once: the fetch that recorded nothing
    # tells it nothing.
    assert heard == [status_event(message.id, "received")]


async def statuses_until_now(console: Subscription) -> list[Event]:
    """The status events `console` has on its way (a marker published now comes after them)."""
    marker = {"type": "marker"}
    console.hub.publish(console.shop_id, marker)
    heard: list[Event] = []
    while (event := await console.next(within=5.0)) != marker:
        assert event is not None
        if event["type"] == "status":
            heard.append(event)
    return heard


async def test_photos_a_stop_interrupted_are_fetched_at_the_next_start(
    make_client: MakeClient,
    twilio: tuple[FakeTwilio, TestServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, server = twilio
    with monkeypatch.context() as patched:
        patched.setattr("bot.webhooks.twilio.fetch_photos", _not_now)
        before = await shop_client(make_client, server, tmp_path)
        url = media_url(twilio)
        await mms(before, "현장 사진", [(url, "image/jpeg")])
        await settled(before.app)
    message = await inbound(before)
    assert "media" not in message.payload
    page = await console_page(before, message.conversation_id)
    assert "첨부 1개 받아오는 중…" in page
    assert fake.media_gets == 0

    after = await shop_client(make_client, server, tmp_path)  # the next start
    await settled(after.app)
    (photo,) = await photos(after)
    assert photo.message_id == message.id
    assert fake.media_gets == 1


async def test_a_fetch_cut_short_by_a_stop_leaves_no_file_behind(
    make_client: MakeClient, twilio: tuple[FakeTwilio, TestServer], tmp_path: Path
) -> None:
    """The first photo is kept on disk, the second still on its way, when dangol stops:
    nothing was recorded, so the kept file is removed, and the next start fetches both."""
    fake, server = twilio
    fake.media_hang_after = 1
    before = await shop_client(make_client, server, tmp_path)
    first, second = media_url(twilio), media_url(twilio)
    await mms(before, "사진 두 장", [(first, "image/jpeg"), (second, "image/jpeg")])
    await fake.hanging()  # the first is on disk, the second hangs at Twilio
    assert fake.media_gets == 2
    assert len(stored_files(tmp_path)) == 1
    message = await inbound(before)

    await before.close()  # the stop interrupts the fetch
    assert stored_files(tmp_path) == []
    fake.media_hang_after = None
    after = await shop_client(make_client, server, tmp_path)  # the next start
    kept = await photos(after)
    assert [p.message_id for p in kept] == [message.id, message.id]
    assert sorted(p.name for p in stored_files(tmp_path)) == sorted(p.stored_name for p in kept)


async def _not_now(app: Any, message_id: int) -> None:
    """In place of the fetch after the webhook: as if the process stopped right then."""


async def test_photos_of_a_message_stored_after_its_answer_are_fetched_too(
    make_client: MakeClient, twilio: tuple[FakeTwilio, TestServer], tmp_path: Path
) -> None:
    """The database was slower than the webhook's budget: Twilio had its answer before the
    message committed. The photos follow the commit all the same."""
    fake, server = twilio
    client = await shop_client(make_client, server, tmp_path, budget_ms=50)
    assert client.app is not None
    url = media_url(twilio)
    async with HeldWrites(client.app):
        await mms(client, "사진 갑니다", [(url, "image/jpeg")])  # answered without the commit
        assert fake.media_gets == 0
    await settled(client.app)
    (photo,) = await photos(client)
    assert photo.message_id == (await inbound(client)).id
