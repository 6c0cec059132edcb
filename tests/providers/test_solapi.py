"""SOLAPI adapter against the fake SOLAPI on 127.0.0.1 (tests/fakes/solapi.py)."""

from __future__ import annotations

import base64
import io
import itertools
import json
import random
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from fakes.solapi import FakeSolapi
from PIL import Image

from providers.base import (
    Capability,
    NotYet,
    Outgoing,
    PermanentError,
    ProviderConfigError,
    ProviderError,
    RateLimited,
    Recipient,
    RejectedWebhook,
    SendRef,
    SendResult,
    TransientError,
    UnknownOutcome,
    parse_retry_after,
    status_advances,
)
from providers.sms_text import UnsendableText, cp949_len, cut_bytes, size_mms_text, size_text
from providers.solapi import (
    SEND_PATH,
    STORAGE_PATH,
    SolapiAccountError,
    SolapiOptedOut,
    SolapiProvider,
    SolapiRecipientError,
    auth_header,
    classify_status,
    jpeg_size,
    parse_report,
    path_for_type,
)
from providers.solapi.hours import KST

PAYLOADS = Path(__file__).parents[1] / "payloads" / "solapi"
NOW = datetime(2026, 11, 22, 1, 15, tzinfo=UTC)
PF_ID = "KA01PF2603090000000000000000001"


def msg(ref: str, phone: str = "+821011112222", text: str = "안녕하세요", **kw: Any) -> Outgoing:
    return Outgoing(ref=ref, recipient=Recipient(phone=phone), text=text, purpose="reply", **kw)


class Env:
    def __init__(self, fake: FakeSolapi, url: str, session: aiohttp.ClientSession) -> None:
        self.fake, self.url, self.session = fake, url, session

    def provider(
        self,
        *,
        clock: Callable[[], datetime] = lambda: NOW,
        salt: Callable[[], str] | None = None,
        **options: Any,
    ) -> SolapiProvider:
        opts: dict[str, Any] = {
            "api_key": self.fake.api_key,
            "api_secret": self.fake.api_secret,
            "sender": "02-1234-5678",
            "base_url": self.url,
            "pf_id": PF_ID,
            "timeout": 0.5,
        } | options
        opts = {k: v for k, v in opts.items() if v is not None}
        counter = itertools.count()
        return SolapiProvider(
            opts,
            self.session,
            clock=clock,
            salt=salt or (lambda: f"salt{next(counter):028d}"),
        )


@pytest.fixture
async def env(aiohttp_server: Any) -> AsyncIterator[Env]:
    fake = FakeSolapi(now=lambda: NOW)
    server = await aiohttp_server(fake.app, host="127.0.0.1")
    async with aiohttp.ClientSession() as session:
        yield Env(fake, str(server.make_url("")).rstrip("/"), session)
        fake.release()


# --------------------------------------------------------------------------- auth


def test_documented_signature_vector() -> None:
    header = auth_header(
        "NCSEXAMPLEKEY0001",
        "EXAMPLESECRETDONOTUSE",
        "2026-03-09T10:15:00+09:00",
        "4f1c2a9be0d34c7a8b61e2f05d9a7c33",
    )
    assert header == (
        "HMAC-SHA256 apiKey=NCSEXAMPLEKEY0001, date=2026-03-09T10:15:00+09:00, "
        "salt=4f1c2a9be0d34c7a8b61e2f05d9a7c33, "
        "signature=afb01d36ca31f0afb634699331c8a7642318ab0ae34e93f265c0f2a88b0801a3"
    )


def test_provider_header_uses_its_clock_and_salt() -> None:
    p = SolapiProvider(
        {
            "api_key": "NCSEXAMPLEKEY0001",
            "api_secret": "EXAMPLESECRETDONOTUSE",
            "sender": "0212345678",
        },
        None,
        clock=lambda: datetime(2026, 3, 9, 10, 15, tzinfo=ZoneInfo("Asia/Seoul")),
        salt=lambda: "4f1c2a9be0d34c7a8b61e2f05d9a7c33",
    )
    assert p.authorization().endswith(
        "date=2026-03-09T10:15:00+09:00, salt=4f1c2a9be0d34c7a8b61e2f05d9a7c33, "
        "signature=afb01d36ca31f0afb634699331c8a7642318ab0ae34e93f265c0f2a88b0801a3"
    )


async def test_fresh_salt_on_every_request_and_retry(env: Env) -> None:
    p = env.provider()
    env.fake.fail_next("503")
    (first,) = await p.send([msg("1")])
    assert isinstance(first, UnknownOutcome)
    (second,) = await p.send([msg("1")])  # a retry: new salt, so no DuplicatedSignature
    assert isinstance(second, SendResult)
    assert len(env.fake.salts) == 2
    assert len(set(env.fake.salts)) == 2
    assert env.fake.auth_failures == []


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        ({"api_key": "NCSWRONG"}, SolapiAccountError, "InvalidAPIKey"),
        ({"api_secret": "wrong"}, SolapiAccountError, "SignatureDoesNotMatch"),
        ({"clock": lambda: NOW + timedelta(minutes=20)}, TransientError, "RequestTimeTooSkewed"),
    ],
)
async def test_auth_failures(env: Env, change: dict[str, Any], error: type, code: str) -> None:
    (out,) = await env.provider(**change).send([msg("1")])
    assert type(out) is error
    assert isinstance(out, ProviderError)
    assert out.code == code
    assert env.fake.messages == {}


async def test_reused_signature_is_retryable(env: Env) -> None:
    p = env.provider(salt=lambda: "the-same-salt-every-time-000000")
    assert isinstance((await p.send([msg("1")]))[0], SendResult)
    (out,) = await p.send([msg("2")])
    assert type(out) is TransientError
    assert out.code == "DuplicatedSignature"


# --------------------------------------------------------------------------- sizing


def test_cp949_sizing() -> None:
    assert size_text("가" * 45).kind == "SMS"
    assert size_text("가" * 45).size == 90
    long = size_text("가" * 46)
    assert long.kind == "LMS"
    assert long.subject == "가" * 20
    assert cp949_len(long.subject) == 40
    # a cut never halves a character: 39 bytes of room after an ASCII char
    assert cut_bytes("a" + "가" * 30, 40) == "a" + "가" * 19
    titled = size_text("첫 줄 제목입니다\n" + "본문" * 50)
    assert titled.subject == "첫 줄 제목입니다"
    given = size_text("본문" * 50, subject="아주 긴 제목" * 10)
    assert given.subject is not None
    assert cp949_len(given.subject) <= 40
    assert size_text("햏").size == 2  # cp949, not euc-kr's 8-byte jamo


def test_substitutes_and_refuses_unencodable_characters() -> None:
    assert size_text("수리비 ₩30,000 – 완료").text == "수리비 ￦30,000 - 완료"
    with pytest.raises(ValueError, match=r"문자로 보낼 수 없는 글자\(😀\)가 있어요"):
        size_text("감사합니다 😀")


async def test_unsendable_texts_never_reach_solapi(env: Env) -> None:
    p = env.provider()
    out = await p.send(
        [
            msg("emoji", text="감사합니다 😀"),
            msg("long", text="가" * 1000 + "a"),  # 2001 bytes
            msg("ok", text="가" * 1000),  # 2000 bytes: LMS
        ]
    )
    assert isinstance(out[0], PermanentError)
    assert "😀" in out[0].reason
    assert isinstance(out[1], PermanentError)
    assert out[1].code == "too_long"
    assert isinstance(out[2], SendResult)
    assert out[2].path == "lms"
    sent = env.fake.requests[0]["messages"]
    assert [m["customFields"]["ourId"] for m in sent] == ["ok"]
    assert sent[0]["type"] == "LMS"
    assert cp949_len(sent[0]["subject"]) <= 40


async def test_sms_and_lms_on_the_wire(env: Env) -> None:
    p = env.provider()
    out = await p.send([msg("s", text="가" * 45, subject="무시"), msg("l", text="가" * 46)])
    assert [o.path for o in out if isinstance(o, SendResult)] == ["sms", "lms"]
    body = env.fake.requests[0]
    assert body["showMessageList"] is True
    sms, lms = body["messages"]
    assert sms == {
        "to": "01011112222",
        "from": "0212345678",
        "customFields": {"ourId": "s"},
        "type": "SMS",
        "text": "가" * 45,
    }
    assert lms["type"] == "LMS"
    assert lms["subject"] == "가" * 20


def test_numbers() -> None:
    p = SolapiProvider({"api_key": "k", "api_secret": "s", "sender": "0212345678"}, None)
    assert p.build_message(msg("1", phone="010-2222-3333"))[0]["to"] == "01022223333"
    for phone, code in [("+14155550123", "foreign_number"), ("+82123", "bad_number")]:
        with pytest.raises(PermanentError) as info:
            p.build_message(msg("1", phone=phone))
        assert info.value.code == code


# --------------------------------------------------------------------------- AlimTalk


async def test_alimtalk_with_variables_and_sms_fallback(env: Env) -> None:
    p = env.provider()
    m = msg("a1", template="KA01TP1", variables={"고객명": "김민준", "#{작업}": "차단기 교체"})
    body, path = p.build_message(m)
    assert path == "alimtalk"
    assert body["type"] == "ATA"
    assert body["kakaoOptions"] == {
        "pfId": PF_ID,
        "templateId": "KA01TP1",
        "variables": {"#{고객명}": "김민준", "#{작업}": "차단기 교체"},
        "disableSms": False,
    }
    (out,) = await p.send([m])
    assert isinstance(out, SendResult)
    assert out.path == "alimtalk"

    no_channel = env.provider(pf_id=None)
    (refused,) = await no_channel.send([m])
    assert isinstance(refused, PermanentError)
    assert refused.code == "no_pf_id"
    # An ad is never AlimTalk (informational only): with a template it is a brand message.
    ad = msg("a2", template="KA01TP1", informational=False, text=AD)
    assert p.build_message(ad)[1] == "brand_message"


# --------------------------------------------------------------------------- MMS


def picture(width: int, height: int, fmt: str = "JPEG", *, noise: bool = False, **kw: Any) -> bytes:
    if noise:
        pixels = random.Random(5).randbytes(width * height * 3)
        image = Image.frombytes("RGB", (width, height), pixels)
    else:
        image = Image.new("RGB", (width, height), (30, 120, 200))
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def on_disk(tmp_path: Path, data: bytes, name: str = "photo.mms.jpg") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_jpeg_size_reads_the_frame_header() -> None:
    assert jpeg_size(picture(640, 480)) == (640, 480)
    assert jpeg_size(picture(300, 200, progressive=True, quality=70)) == (300, 200)
    exif = Image.Exif()
    exif[0x010F] = "samsung"  # an APP1 segment before the frame header
    assert jpeg_size(picture(1500, 1440, exif=exif.tobytes())) == (1500, 1440)
    assert jpeg_size(picture(64, 64, "PNG")) is None
    assert jpeg_size(picture(64, 64)[:20]) is None  # cut before the frame header
    assert jpeg_size(b"") is None
    assert jpeg_size(b"\xff\xd8\xff\xe0\x00\x01") is None  # a length that cannot be


def test_mms_text_sizing() -> None:
    short = size_mms_text("사진 보내드려요")
    assert (short.kind, short.subject) == ("MMS", None)  # a caption needs no title
    long = size_mms_text("견적 안내\n" + "가" * 500)
    assert (long.kind, long.subject) == ("MMS", "견적 안내")
    assert size_mms_text("짧게", subject="아주 긴 제목" * 10).subject == "아주 긴 제목" * 3 + "아주"
    with pytest.raises(UnsendableText) as info:
        size_mms_text("가" * 1001)
    assert info.value.code == "too_long"
    with pytest.raises(UnsendableText):
        size_mms_text("사진 😀")


async def test_a_picture_goes_as_mms_with_its_uploaded_file(env: Env, tmp_path: Path) -> None:
    data = picture(800, 600)
    path = on_disk(tmp_path, data)
    out = await env.provider().send(
        [msg("p1", image_path=path, image_url="https://shop.example/p/x.jpg"), msg("s1")]
    )
    assert isinstance(out[0], SendResult)
    assert isinstance(out[1], SendResult)
    assert [o.path for o in out if isinstance(o, SendResult)] == ["mms", "sms"]
    ((file_id, stored),) = env.fake.files.items()
    assert (stored["data"], stored["name"], stored["type"]) == (data, "mms-p1.jpg", "MMS")
    assert (stored["width"], stored["height"]) == (800, 600)
    (mms,) = env.fake.mms()
    assert mms["imageId"] == file_id
    assert (mms["text"], mms["to"], mms["from"]) == ("안녕하세요", "01011112222", "0212345678")
    assert "subject" not in mms
    assert mms["customFields"] == {"ourId": "p1"}
    assert env.fake.auth_failures == []  # the upload was signed like any call


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (picture(500, 500, noise=True, quality=95), "image_too_large", "200KB"),
        (picture(64, 64, "PNG"), "image_not_jpeg", "JPG"),
        (picture(64, 64, "GIF"), "image_not_jpeg", "JPG"),
        (picture(1600, 1000), "image_dimensions", "1600×1000"),
        (picture(1000, 1441), "image_dimensions", "1500×1440"),
        (None, "image_missing", "찾을 수 없어요"),
    ],
    ids=["over-200KB", "png", "gif", "too-wide", "too-tall", "missing"],
)
async def test_pictures_solapi_would_refuse_are_refused_before_any_call(
    env: Env, tmp_path: Path, data: bytes | None, code: str, words: str
) -> None:
    path = on_disk(tmp_path, data) if data is not None else str(tmp_path / "gone.jpg")
    out = await env.provider().send([msg("p1", image_path=path), msg("s1")])
    assert isinstance(out[0], PermanentError)
    assert out[0].code == code
    assert words in out[0].reason
    assert isinstance(out[1], SendResult)  # the rest of the batch goes
    assert env.fake.uploads == 0
    assert env.fake.refs() == ["s1"]


@pytest.mark.parametrize(
    ("mode", "error"),
    [("503", TransientError), ("500", TransientError), ("hang", TransientError),
     ("400", PermanentError)],
)  # fmt: skip
async def test_a_failed_upload_sends_nothing(
    env: Env, tmp_path: Path, mode: str, error: type
) -> None:
    path = on_disk(tmp_path, picture(320, 240))
    p = env.provider(timeout=0.3)
    env.fake.fail_upload_next(mode)
    (out,) = await p.send([msg("p1", image_path=path)])
    # Nothing reached a customer: even a timeout is safe to try again (not an unknown outcome).
    assert type(out) is error
    assert env.fake.messages == {}
    if error is TransientError:
        (again,) = await p.send([msg("p1", image_path=path)])
        assert isinstance(again, SendResult)
        assert env.fake.refs() == ["p1"]


async def test_an_upload_with_bad_credentials_is_an_account_error(env: Env, tmp_path: Path) -> None:
    path = on_disk(tmp_path, picture(320, 240))
    (out,) = await env.provider(api_secret="wrong").send([msg("p1", image_path=path)])
    assert isinstance(out, SolapiAccountError)
    assert out.code == "SignatureDoesNotMatch"
    assert env.fake.files == {}


@pytest.mark.parametrize(
    ("data", "kind", "code"),
    [
        (picture(500, 500, noise=True, quality=95), "MMS", "FileSizeExceeded"),
        (picture(64, 64, "PNG"), "MMS", "InvalidFileFormat"),
        (b"\xff\xd8\xff not really a jpeg", "MMS", "InvalidFileFormat"),
        (picture(1501, 1000), "MMS", "InvalidImageSize"),
        (picture(64, 64), "KAKAO", "ValidationError"),
    ],
)
async def test_the_fake_holds_uploads_to_solapis_limits(
    env: Env, data: bytes, kind: str, code: str
) -> None:
    """What the adapter refuses itself, the fake vendor refuses too (a 400)."""
    body = {"file": base64.b64encode(data).decode(), "type": kind, "name": "x.jpg"}
    with pytest.raises(PermanentError) as info:
        await env.provider()._request("POST", STORAGE_PATH, json_body=body)
    assert info.value.code == code
    assert env.fake.files == {}


async def test_an_mms_naming_an_unknown_image_is_refused(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = env.provider()

    async def no_upload(path: str, *, name: str = "") -> str:
        return "ST01FZNEVERUPLOADED"

    monkeypatch.setattr(p, "upload_image", no_upload)
    (out,) = await p.send([msg("p1", image_path=on_disk(tmp_path, picture(32, 32)))])
    assert isinstance(out, PermanentError)
    assert out.code == "1052"
    assert env.fake.mms() == []


def test_a_picture_needs_a_file_and_no_template() -> None:
    p = SolapiProvider({"api_key": "k", "api_secret": "s", "sender": "0212345678"}, None)
    with pytest.raises(PermanentError) as info:
        p.build_message(msg("1", image_url="https://shop.example/p/x.jpg"))
    assert info.value.code == "no_image_file"
    with pytest.raises(PermanentError) as info:
        p.build_message(msg("1", template="KA01TP1", image_path="/x.mms.jpg"))
    assert info.value.code == "image_on_alimtalk"
    body, path = p.build_message(msg("1", image_path="/x.mms.jpg"), "ST01FZ1")
    assert (path, body["type"], body["imageId"]) == ("mms", "MMS", "ST01FZ1")


# --------------------------------------------------------------------------- partial failure


def test_fixture_partial_failure() -> None:
    answer = json.loads((PAYLOADS / "send-many-detail-partial-failure.json").read_bytes())
    p = SolapiProvider({"api_key": "k", "api_secret": "s", "sender": "0212345678"}, None)
    got = p._read_send_answer(answer, [(0, "outbox-1", "sms"), (1, "outbox-2", "sms")])
    assert got[0] == SendResult(
        "outbox-1", "M4V20261122101500ABCDEFGHIJKLMN1", "accepted", "sms", "정상 접수"
    )
    assert isinstance(got[1], SolapiAccountError)
    assert isinstance(got[1], PermanentError)
    assert got[1].code == "1062"
    assert "발신번호 미등록" in got[1].reason


async def test_partial_failure_from_the_fake(env: Env) -> None:
    env.fake.fail_recipient("01000000000", "1061", "080 수신거부")
    out = await env.provider().send([msg("1"), msg("2", phone="+821000000000")])
    assert isinstance(out[0], SendResult)
    assert isinstance(out[1], SolapiRecipientError)
    assert out[1].opt_out
    assert env.fake.refs() == ["1"]


@pytest.mark.parametrize(
    ("code", "kind", "opt_out"),
    [
        ("1061", SolapiOptedOut, True),
        ("2061", SolapiOptedOut, True),
        ("3059", SolapiRecipientError, False),
        ("1030", SolapiAccountError, False),
        ("1029", PermanentError, False),
        ("3104", PermanentError, False),
        ("3108", TransientError, False),
        ("3040", TransientError, False),
        ("1999", PermanentError, False),
        ("3999", TransientError, False),
    ],
)
def test_status_classes(code: str, kind: type, opt_out: bool) -> None:
    error = classify_status(code, "x")
    assert type(error) is kind
    assert error.code == code
    assert getattr(error, "opt_out", False) is opt_out


# --------------------------------------------------------------------------- failure matrix


@pytest.mark.parametrize(
    ("mode", "record", "error", "vendor_has_it"),
    [
        ("hang_before_read", False, UnknownOutcome, False),
        ("hang_after_record", False, UnknownOutcome, True),
        ("reset", False, UnknownOutcome, False),
        ("429", False, RateLimited, False),
        ("500", False, UnknownOutcome, False),
        ("503", True, UnknownOutcome, True),
        ("bad_json", False, UnknownOutcome, True),
    ],
)
async def test_failure_matrix(
    env: Env, mode: str, record: bool, error: type, vendor_has_it: bool
) -> None:
    p = env.provider(timeout=0.3)
    env.fake.fail_next(mode, record=record)
    (out,) = await p.send([msg("m1")])
    assert type(out) is error
    if isinstance(out, RateLimited):
        assert out.retry_after == 3.0
    assert (env.fake.refs() == ["m1"]) is vendor_has_it
    # Reconcile as the outbox does before any resend: found ⇒ recorded as sent, no resend.
    found = await p.lookup(SendRef("m1", None, NOW))
    if vendor_has_it:
        assert found is not None
        assert (found.ref, found.status, found.path) == ("m1", "accepted", "sms")
    else:
        assert found is None
        (again,) = await p.send([msg("m1")])
        assert isinstance(again, SendResult)
    assert env.fake.refs() == ["m1"]  # exactly one copy at the vendor either way


async def test_connection_refused_is_transient(env: Env) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (out,) = await env.provider(base_url=f"http://127.0.0.1:{port}").send([msg("1")])
    assert type(out) is TransientError


def test_retry_after_forms() -> None:
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(None, NOW) == 1.0
    assert parse_retry_after("Sun, 22 Nov 2026 01:15:30 GMT", NOW) == 30.0


# --------------------------------------------------------------------------- lookup


async def test_lookup_by_message_id_and_by_window(env: Env) -> None:
    p = env.provider()
    p.lookup_page_size = 2  # forces paging through the window
    out = await p.send([msg(str(i), phone=f"+8210111122{i:02d}") for i in range(5)])
    ids = [o.provider_message_id for o in out if isinstance(o, SendResult)]
    assert len(ids) == 5
    by_id = await p.lookup(SendRef("3", ids[3]))
    assert by_id is not None
    assert (by_id.ref, by_id.provider_message_id) == ("3", ids[3])
    by_window = await p.lookup(SendRef("4", None, NOW - timedelta(minutes=1)))
    assert by_window is not None
    assert by_window.provider_message_id == ids[4]
    assert await p.lookup(SendRef("404", None, NOW)) is None
    assert await p.lookup(SendRef("404")) is None  # no attempt time: last 24 h


@pytest.mark.parametrize("failure", ["503", "500", "429", "hang", "window"])
async def test_a_search_that_failed_is_never_not_found(env: Env, failure: str) -> None:
    """Only a search read to its end may answer "not there", which lets the outbox send
    again: a vendor error, a timeout or a window with more messages than `lookup_max_pages`
    reads raise instead (the outbox asks again later)."""
    p = env.provider(timeout=0.3)
    if failure == "window":
        p.lookup_page_size, p.lookup_max_pages = 1, 2
        await p.send([msg(str(i)) for i in range(3)])  # the window holds three, none ours
    else:
        env.fake.list_failure = failure
    with pytest.raises(ProviderError):
        await p.lookup(SendRef("ours", None, NOW))
    if failure != "window":
        with pytest.raises(ProviderError):
            await p.lookup(SendRef("ours", "M4V20261122011500000000000000001"))
    assert env.fake.lists >= 1


# --------------------------------------------------------------------------- reports


def test_parse_fixture_report() -> None:
    (report,) = parse_report((PAYLOADS / "webhook-single-report.json").read_bytes())
    assert report.event_id == "EV261122101512ABCDEF"
    assert report.message_id == "M4V20261122101500ABCDEFGHIJKLMN1"
    assert report.ref == "outbox-1"
    assert report.status == "delivered"
    assert report.path == "alimtalk"
    assert report.reported_at == datetime(2026, 11, 22, 1, 15, 5, tzinfo=UTC)
    assert (report.reason, report.opted_out) == ("", False)


def test_parse_failed_and_group_reports() -> None:
    body = [
        {"eventDataId": "E1", "retryCount": 1, "data": {"messageId": "M1", "statusCode": "3059",
         "statusMessage": "변작 발신번호", "type": "SMS", "customFields": {"ourId": "9"}}},
        {"eventDataId": "E2", "retryCount": 0, "data": {"groupId": "G1", "count": {}}},
    ]  # fmt: skip
    (report,) = parse_report(json.dumps(body).encode())
    assert (report.status, report.path, report.code) == ("failed", "sms", "3059")
    assert "변작 발신번호" in report.reason
    assert not report.opted_out
    for bad in (b"not json", b'{"eventDataId": "E"}', b"[1, 2]"):
        with pytest.raises(RejectedWebhook) as info:
            parse_report(bad)
        assert info.value.http_status == 400


def test_status_order_is_monotonic() -> None:
    assert status_advances(None, "accepted")
    assert status_advances("accepted", "sent")
    assert status_advances("sent", "delivered")
    assert status_advances("accepted", "failed")
    assert not status_advances("delivered", "accepted")
    assert not status_advances("delivered", "sent")
    assert not status_advances("failed", "delivered")
    assert not status_advances("delivered", "delivered")


# --------------------------------------------------------------------------- secrets


def test_repr_hides_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_SOLAPI_SECRET", "sup3r-s3cret-value")
    p = SolapiProvider(
        {"api_key": "NCSKEYVALUE123", "api_secret_env": "T_SOLAPI_SECRET", "sender": "0212345678"},
        None,
    )
    for shown in (repr(p), str(p)):
        assert "sup3r-s3cret-value" not in shown
        assert "NCSKEYVALUE123" not in shown
        assert "0212345678" in shown


# --------------------------------------------------------------------------- brand messages and ads

BRAND_TEMPLATE = "KA01TP2611220000000000000000003"
AD = "(광고) 한빛전기 봄맞이 점검 10% 할인\n예약: 02-1234-5678\n무료수신거부 080-123-4567"
AD_SHORT = "(광고)한빛전기 점검 10% 할인\n무료거부 0801234567"
AD_LONG = (
    "(광고) 한빛전기 봄맞이 점검\n"
    + "분전반·누전차단기 무료 점검과 교체 10% 할인을 드려요. " * 3
    + "\n무료수신거부 080-123-4567"
)


def kst(hour: int, minute: int = 0, second: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=KST)


def brand(ref: str = "b1", text: str = AD, **kw: Any) -> Outgoing:
    kw.setdefault("variables", {"고객명": "김민준"})
    return msg(ref, text=text, template=BRAND_TEMPLATE, informational=False, **kw)


def ad_sms(ref: str = "s1", text: str = AD, **kw: Any) -> Outgoing:
    return msg(ref, text=text, informational=False, **kw)


def offline(**options: Any) -> SolapiProvider:
    """A provider that is never asked to call anyone, its clock at 10:15 KST."""
    base = {"api_key": "k", "api_secret": "s", "sender": "0212345678", "pf_id": PF_ID}
    opts = {k: v for k, v in (base | options).items() if v is not None}  # None: not given
    return SolapiProvider(opts, None, clock=lambda: NOW)


def at(env: Env, when: datetime, **options: Any) -> SolapiProvider:
    """A provider whose clock, and the fake vendor's, read `when`."""
    env.fake.now = lambda: when
    return env.provider(clock=lambda: when, **options)


async def test_brand_message_on_the_wire(env: Env) -> None:
    m = brand(variables={"고객명": "김민준", "#{할인율}": "10%", "횟수": 3})
    p = env.provider()
    body, path = p.build_message(m)
    assert path == "brand_message"
    assert body == {
        "to": "01011112222",
        "from": "0212345678",
        "customFields": {"ourId": "b1"},
        "type": "BMS_TEXT",
        "text": AD,  # the SMS fallback, itself a lawful ad
        "kakaoOptions": {
            "pfId": PF_ID,
            "templateId": BRAND_TEMPLATE,
            # the AlimTalk convention: bare names wrapped in #{…}, every value a string
            "variables": {"#{고객명}": "김민준", "#{할인율}": "10%", "#{횟수}": "3"},
            "disableSms": False,
            "adFlag": True,
            "bms": {"targeting": "I"},
        },
    }
    (out,) = await p.send([m])
    assert isinstance(out, SendResult)
    assert out.path == "brand_message"
    (stored,) = env.fake.brand_messages()
    assert stored["messageId"] == out.provider_message_id
    assert stored["kakaoOptions"] == body["kakaoOptions"]


async def test_brand_message_needs_a_fallback_text_sms_can_carry(env: Env) -> None:
    """The fallback is an SMS/LMS: it must fit one and be encodable. Whether it is a lawful
    ad — ``(광고)`` first, the free opt-out last — the send-time policy checked before this
    message reached the adapter (tests/scheduler/test_policy.py, BAD_MARKINGS)."""
    p = env.provider()
    substituted = AD.replace("10% 할인", "₩10,000 할인")
    long_body, _ = p.build_message(brand(text=AD_LONG))
    assert (long_body["text"], "subject" in long_body) == (AD_LONG, False)  # LMS-sized is fine
    assert p.build_message(brand(text=substituted))[0]["text"] == substituted.replace("₩", "￦")
    refused = await p.send(
        [
            brand("empty", text="  "),
            brand("emoji", text="(광고) 할인 😀\n무료거부 0801234567"),
            brand("long", text="(광고)" + "가" * 1000 + "\n무료거부 0801234567"),
            brand("ok"),
        ]
    )
    codes = [o.code for o in refused if isinstance(o, PermanentError)]
    assert codes == ["no_fallback_text", "unencodable", "too_long"]
    assert "대체발송" in str(refused[0]) + str(refused[1])
    assert isinstance(refused[3], SendResult)
    assert env.fake.refs() == ["ok"]


def test_brand_message_refuses_pictures_and_needs_a_channel() -> None:
    for picture_kw in ({"image_path": "/x.mms.jpg"}, {"image_url": "https://shop.example/x.jpg"}):
        with pytest.raises(PermanentError) as info:
            offline().build_message(brand(**picture_kw))
        assert info.value.code == "image_on_brand_message"
    with pytest.raises(PermanentError) as info:
        offline(pf_id=None).build_message(brand())
    assert info.value.code == "no_pf_id"
    assert "브랜드 메시지" in info.value.reason
    with pytest.raises(PermanentError) as info:  # AlimTalk keeps its own wording
        offline(pf_id=None).build_message(msg("a", template="KA01TP1"))
    assert (info.value.code, "알림톡" in info.value.reason) == ("no_pf_id", True)


def test_brand_targeting_is_an_option_with_friends_by_default() -> None:
    assert offline().options["brand_targeting"] == "I"
    assert offline(brand_targeting="N").build_message(brand())[0]["kakaoOptions"]["bms"] == {
        "targeting": "N"
    }
    for bad in ("X", "i", "", "IM", 1):
        with pytest.raises(ProviderConfigError, match=r"providers\.solapi\.brand_targeting"):
            offline(brand_targeting=bad)


async def test_targeting_m_needs_kakaos_approval(env: Env) -> None:
    p = env.provider(brand_targeting="M")
    (refused,) = await p.send([brand("m1")])
    assert type(refused) is PermanentError
    assert refused.code == "1083"
    env.fake.brand_targeting = ("I", "M", "N")  # the channel got Kakao's approval
    (out,) = await p.send([brand("m2")])
    assert isinstance(out, SendResult)
    assert env.fake.brand_messages()[0]["kakaoOptions"]["bms"] == {"targeting": "M"}


async def test_the_laws_ad_rules_are_not_the_adapters(env: Env) -> None:
    """The marking and the night ban are the send-time policy's (scheduler/policy.py): what
    reaches the adapter has passed them — an ad SMS at 23:30 went because the customer gave
    night consent. Only Kakao's own window holds a brand message."""
    p = at(env, kst(23, 30))
    out = await p.send([ad_sms("s", text=AD), brand("b")])
    assert isinstance(out[0], SendResult)
    assert out[0].path == "sms"
    assert type(out[1]) is NotYet
    assert out[1].code == "ad_hours"
    assert env.fake.refs() == ["s"]


H = 3600.0
# (KST hour, minute) → seconds until 08:00 KST, or None when a brand message may go now.
WINDOW: list[tuple[tuple[int, int], float | None]] = [
    ((7, 59), 60.0),
    ((8, 0), None),
    ((19, 59), None),
    ((20, 0), 12 * H),
    ((20, 59), 11 * H + 60),
    ((21, 0), 11 * H),
    ((23, 30), 8.5 * H),
]


@pytest.mark.parametrize(("hm", "wait"), WINDOW, ids=lambda v: str(v))
async def test_brand_message_hours(env: Env, hm: tuple[int, int], wait: float | None) -> None:
    """Kakao's window, 08:00–20:00 KST (SOLAPI 3108): the vendor's rule, kept here."""
    p = at(env, kst(*hm))
    (out,) = await p.send([brand()])
    if wait is None:
        assert isinstance(out, SendResult)
        assert out.path == "brand_message"
        assert len(env.fake.messages) == 1
        return
    # Fine but early (or late): the outbox waits until 08:00 rather than giving up.
    assert type(out) is NotYet
    assert out.code == "ad_hours"
    assert out.retry_after == wait
    assert "08:00" in out.reason
    assert env.fake.requests == []


async def test_informational_messages_have_no_hours(env: Env) -> None:
    p = at(env, kst(23, 30))
    out = await p.send(
        [
            msg("a", template="KA01TP1", variables={"고객명": "김민준"}),
            msg("s", text="내일 10시 방문"),
        ]
    )
    assert [o.path for o in out if isinstance(o, SendResult)] == ["alimtalk", "sms"]
    ata = next(m for m in env.fake.messages.values() if m["type"] == "ATA")
    assert "text" not in ata
    assert ata["kakaoOptions"] == {
        "pfId": PF_ID,
        "templateId": "KA01TP1",
        "variables": {"#{고객명}": "김민준"},
        "disableSms": False,
    }


async def test_an_ad_without_a_template_goes_as_a_marked_sms_or_lms(env: Env) -> None:
    p = env.provider()
    out = await p.send([ad_sms("s", text=AD_SHORT), ad_sms("l", text=AD_LONG)])
    assert [o.path for o in out if isinstance(o, SendResult)] == ["sms", "lms"]
    sms, lms = env.fake.requests[0]["messages"]
    assert (sms["type"], sms["text"]) == ("SMS", AD_SHORT)
    assert (lms["type"], lms["text"]) == ("LMS", AD_LONG)
    assert lms["subject"] == "(광고) 한빛전기 봄맞이 점검"
    assert "kakaoOptions" not in sms
    assert "kakaoOptions" not in lms


async def test_an_ad_mms_goes_when_the_policy_let_it(env: Env, tmp_path: Path) -> None:
    """No hours of the adapter's own for an ad MMS: 21:30 is lawful with night consent,
    which only the send-time policy can see."""
    path = on_disk(tmp_path, picture(320, 240))
    (out,) = await at(env, kst(21, 30)).send([ad_sms("p", text=AD, image_path=path)])
    assert isinstance(out, SendResult)
    assert out.path == "mms"
    assert env.fake.uploads == 1


def test_3108_waits_for_kakaos_morning() -> None:
    assert type(classify_status("3108", "x")) is TransientError  # no clock: as before
    evening = classify_status("3108", "x", now=kst(20, 30))
    assert isinstance(evening, NotYet)
    assert (evening.code, evening.retry_after) == ("3108", 11.5 * H)
    early = classify_status("3108", "x", now=kst(7, 0))
    assert isinstance(early, NotYet)
    assert early.retry_after == H
    assert "08–20시" in early.reason
    skewed = classify_status("3108", "x", now=kst(19, 59, 30))
    assert isinstance(skewed, NotYet)
    assert skewed.retry_after == 60.0  # ask again soon; our own check then knows better


async def test_3108_from_solapi_then_our_own_check(env: Env) -> None:
    """SOLAPI's clock is past 20:00, ours not quite: its 3108 becomes a short wait, and the
    next attempt is held by our own check until the morning."""
    env.fake.now = lambda: kst(20, 0, 10)
    p = env.provider(clock=lambda: kst(19, 59, 30))
    (out,) = await p.send([brand("b")])
    assert type(out) is NotYet
    assert (out.code, out.retry_after) == ("3108", 60.0)
    assert env.fake.brand_messages() == []
    (again,) = await at(env, kst(20, 0, 40)).send([brand("b")])
    assert type(again) is NotYet
    assert (again.code, again.retry_after) == ("ad_hours", 12 * H - 40)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda m: m["kakaoOptions"].pop("pfId"), "1010"),
        (lambda m: m["kakaoOptions"].pop("templateId"), "1010"),
        (lambda m: m["kakaoOptions"].pop("bms"), "1083"),
        (lambda m: m["kakaoOptions"].update(bms={"targeting": "X"}), "1083"),
        (lambda m: m["kakaoOptions"].update(bms={"targeting": "N"}), "1083"),  # not approved
        (lambda m: m.update(type="BMS_IMAGE"), "1025"),
        (lambda m: m.update(imageId="ST01FZ1"), "1052"),
        (lambda m: m.pop("text"), "1010"),  # fallback on, nothing to fall back with
        (lambda m: m.update(text="(광고) 😀"), "1029"),
        (lambda m: m.update(text="가" * 1001), "1031"),
        (lambda m: m["kakaoOptions"].update(variables={"고객명": "김민준"}), "1011"),
        (lambda m: m["kakaoOptions"].update(variables={"#{횟수}": 3}), "1011"),
        (lambda m: m.pop("text") and m["kakaoOptions"].update(disableSms=True), "2000"),
        (lambda m: None, "2000"),
    ],
    ids=[
        "no-pfId", "no-templateId", "no-bms", "bad-targeting", "unapproved-targeting",
        "other-kind", "image", "no-fallback-text", "fallback-emoji", "fallback-too-long",
        "unwrapped-variable", "number-variable", "fallback-off", "as-built",
    ],
)  # fmt: skip
async def test_the_fake_holds_brand_messages_to_solapis_rules(
    env: Env, change: Callable[[dict[str, Any]], Any], code: str
) -> None:
    p = env.provider()
    body, _ = p.build_message(brand())
    change(body)
    payload = {"messages": [body], "showMessageList": True, "allowDuplicates": True}
    answer = await p._request("POST", SEND_PATH, json_body=payload)
    if code == "2000":
        assert answer["messageList"][0]["statusCode"] == "2000"
        assert len(env.fake.brand_messages()) == 1
    else:
        assert answer["failedMessageList"][0]["statusCode"] == code
        assert env.fake.brand_messages() == []


async def test_the_fake_refuses_brand_messages_outside_kakaos_hours(env: Env) -> None:
    env.fake.now = lambda: kst(20, 0)
    p = env.provider(clock=lambda: kst(20, 0))
    body, _ = offline().build_message(brand())  # built at 10:15, sent at 20:00
    payload = {"messages": [body], "showMessageList": True}
    answer = await p._request("POST", SEND_PATH, json_body=payload)
    assert answer["failedMessageList"][0]["statusCode"] == "3108"


def test_capabilities_stay_truthful() -> None:
    caps = SolapiProvider.capabilities
    assert caps == Capability.INITIATE | Capability.IMAGES | Capability.DELIVERY_REPORTS
    assert Capability.INFO_ONLY not in caps  # ads go: as brand messages and marked SMS
    assert Capability.TEMPLATE_REQUIRED not in caps
    assert Capability.BUTTONS not in caps


def test_brand_message_reports_and_lookups_name_their_path() -> None:
    assert path_for_type("BMS_TEXT") == "brand_message"
    assert path_for_type("ATA") == "alimtalk"
    item = {"eventDataId": "E1", "retryCount": 0, "data": {"messageId": "M1", "statusCode": "4000",
            "type": "BMS_TEXT", "customFields": {"ourId": "b1"}}}  # fmt: skip
    (report,) = parse_report(json.dumps([item]).encode())
    assert (report.path, report.status, report.ref) == ("brand_message", "delivered", "b1")
