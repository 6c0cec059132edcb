"""Twilio: our signature validator against the real library, the adapter against a fake
Twilio on loopback (failure matrix included), and the webhook parsing helpers."""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp.test_utils import TestServer
from fakes.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FakeTwilio,
    inbound_sms_form,
    sign,
    signed_request,
    status_callback_form,
)
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from providers.base import (
    CannotTell,
    DeliveryReport,
    OptedOut,
    Outgoing,
    PermanentError,
    ProviderConfigError,
    RateLimited,
    Recipient,
    SendRef,
    SendResult,
    TransientError,
    UnknownOutcome,
    status_advances,
)
from providers.registry import default_registry
from providers.twilio import (
    LOOKUP_PAGE_SIZE,
    TwilioProvider,
    parse_inbound,
    parse_status,
)
from providers.twilio_signature import (
    body_sha256,
    expected_signature,
    is_valid,
    is_valid_json_body,
    url_variants,
)

PAYLOADS = Path(__file__).parents[1] / "payloads" / "twilio"
TO = "+14155550123"
FROM = "+14155550199"

# --------------------------------------------------------------------------- signatures


def _vector() -> dict[str, str]:
    lines = (PAYLOADS / "signature-test-vector.txt").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def test_published_test_vector_passes() -> None:
    v = _vector()
    params = dict(p.split("=", 1) for p in v["form params"].split(", "))
    assert params["Caller"] == "+14158675309"
    sig = v["expected X-Twilio-Signature"]
    assert sig == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert expected_signature(v["auth token"], v["url"], params) == sig
    assert is_valid(v["auth token"], v["url"], params, sig)
    assert not is_valid("54321", v["url"], params, sig)
    assert not is_valid(v["auth token"], v["url"], {**params, "Digits": "1235"}, sig)
    assert not is_valid(v["auth token"], v["url"] + "&x=1", params, sig)
    assert not is_valid(v["auth token"], v["url"], params, "")
    assert not is_valid(v["auth token"], v["url"], params, None)


def _random_text(rng: random.Random, n: int) -> str:
    alphabet = string.ascii_letters + string.digits + " +-_.:/?&=%한글😀"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, n)))


def _random_url(rng: random.Random) -> str:
    scheme = rng.choice(["https", "http"])
    host = rng.choice(["example.com", "shop.dangol.kr", "127.0.0.1", "x.ngrok.app"])
    port = rng.choice(["", ":443", ":80", ":8443"])
    query = rng.choice(["", "?a=1&b=2", "?bodySHA256=abc", "?q=%ED%95%9C"])
    return f"{scheme}://{host}{port}/hooks/twilio/{rng.randint(1, 99)}/sms{query}"


def test_expected_signature_matches_the_twilio_library_on_random_requests() -> None:
    rng = random.Random(20261122)
    for _ in range(60):
        token = _random_text(rng, 40) or "t"
        url = _random_url(rng)
        form = MultiDict[str]()
        for _ in range(rng.randint(0, 8)):
            name = rng.choice(["Body", "From", "To", "MediaUrl", "NumMedia", "X"]) + str(
                rng.randint(0, 2)
            )
            form.add(name, _random_text(rng, 30))
            if rng.random() < 0.3:  # a repeated name
                form.add(name, _random_text(rng, 10))
        library = RequestValidator(token)
        expected = library.compute_signature(url, form)
        assert expected_signature(token, url, form) == expected
        as_lists = {k: form.getall(k) for k in set(form.keys())}
        assert expected_signature(token, url, as_lists) == expected
        assert is_valid(token, url, form, expected)
        assert library.validate(url, form, expected)


def test_default_port_variants_validate_like_the_library() -> None:
    params = {"MessageSid": "SM" + "a" * 32, "Body": "hi"}
    token = "secret-token"
    for signed_url, called_url in [
        ("https://shop.example/hooks/twilio/1/sms", "https://shop.example:443/hooks/twilio/1/sms"),
        ("https://shop.example:443/hooks/twilio/1/sms", "https://shop.example/hooks/twilio/1/sms"),
        ("http://shop.example:80/a?b=1", "http://shop.example/a?b=1"),
    ]:
        sig = RequestValidator(token).compute_signature(signed_url, params)
        assert is_valid(token, called_url, params, sig)
        assert RequestValidator(token).validate(called_url, params, sig)
    # a non-default port is part of what Twilio called: never stripped
    assert url_variants("https://h:8443/x") == ["https://h:8443/x"]
    sig = RequestValidator(token).compute_signature("https://h/x", params)
    assert not is_valid(token, "https://h:8443/x", params, sig)


def test_json_body_variant() -> None:
    body = '{"a": 1}'
    url = f"https://shop.example/hooks/x?bodySHA256={body_sha256(body)}"
    library = RequestValidator(AUTH_TOKEN)
    assert library.compute_hash(body) == body_sha256(body)
    sig = library.compute_signature(url, {})
    assert library.validate(url, body, sig)
    assert is_valid_json_body(AUTH_TOKEN, url, body, sig)
    assert not is_valid_json_body(AUTH_TOKEN, url, body + " ", sig)
    assert not is_valid_json_body(AUTH_TOKEN, "https://shop.example/hooks/x", body, sig)


def test_signed_request_helper_validates_with_ours() -> None:
    url = "https://shop.example/hooks/twilio/1/sms"
    form = inbound_sms_form("Can you come Tuesday?")
    headers, body = signed_request(url, form)
    received = dict(parse_qsl(body, keep_blank_values=True))
    assert is_valid(AUTH_TOKEN, url, received, headers["X-Twilio-Signature"])
    assert not is_valid("other-token", url, received, headers["X-Twilio-Signature"])
    assert sign(url, form) == headers["X-Twilio-Signature"]


# --------------------------------------------------------------------------- the adapter

Make = Callable[..., Awaitable[TwilioProvider]]


@pytest.fixture
async def fake() -> FakeTwilio:
    return FakeTwilio()


@pytest.fixture
async def make(fake: FakeTwilio) -> AsyncIterator[Make]:
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    made: list[TwilioProvider] = []

    async def build(**options: Any) -> TwilioProvider:
        opts: dict[str, Any] = {
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": FROM,
            "base_url": str(server.make_url("")),
            "timeout": 1.0,
            "rate_per_second": 1000.0,
        }
        opts.update(options)
        opts = {k: v for k, v in opts.items() if v is not None}
        provider = TwilioProvider(opts)
        await provider.start()
        made.append(provider)
        return provider

    yield build
    fake.release()
    for provider in made:
        await provider.close()
    await server.close()


def out(ref: str = "1", to: str = TO, text: str = "Your car is ready", **kw: Any) -> Outgoing:
    return Outgoing(ref=ref, recipient=Recipient(phone=to), text=text, purpose="reply", **kw)


async def test_send_posts_the_fields_twilio_expects(make: Make, fake: FakeTwilio) -> None:
    provider = await make(
        status_callback_url="https://shop.example/hooks/twilio/1/status", validity_period=600
    )
    (result,) = await provider.send([out("7")])
    assert isinstance(result, SendResult)
    assert (result.ref, result.status, result.path) == ("7", "accepted", "sms")
    assert result.provider_message_id in fake.messages
    assert result.provider_message_id.startswith("SM")
    assert len(result.provider_message_id) == 34
    assert dict(fake.requests[0]) == {
        "To": TO,
        "From": FROM,
        "Body": "Your car is ready",
        "StatusCallback": "https://shop.example/hooks/twilio/1/status",
        "ValidityPeriod": "600",
    }
    # one POST per message
    outcomes = await provider.send([out("8"), out("9")])
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert len(fake.requests) == 3


async def test_messaging_service_and_media(make: Make, fake: FakeTwilio) -> None:
    provider = await make(from_number=None, messaging_service_sid="MG" + "1" * 32)
    # The local MMS file is SOLAPI's business; Twilio fetches the picture by its URL.
    msg = out("m", image_path="/var/uploads/x.mms.jpg", image_url="https://shop.example/p/1.jpg")
    (result,) = await provider.send([msg])
    assert isinstance(result, SendResult)
    assert result.path == "mms"
    assert fake.requests[0] == [
        ("To", TO),
        ("MessagingServiceSid", "MG" + "1" * 32),
        ("Body", "Your car is ready"),
        ("MediaUrl", "https://shop.example/p/1.jpg"),
    ]
    assert fake.messages[result.provider_message_id]["num_media"] == "1"


async def test_a_plain_http_picture_url_is_fine_too(make: Make, fake: FakeTwilio) -> None:
    provider = await make()
    (result,) = await provider.send([out("h", image_url="http://192.168.0.10:8080/p/1.jpg")])
    assert isinstance(result, SendResult)
    assert ("MediaUrl", "http://192.168.0.10:8080/p/1.jpg") in fake.requests[0]


@pytest.mark.parametrize(
    "image",
    [
        {"image_path": "/var/uploads/x.mms.jpg"},  # no public URL configured
        {"image_url": "/p/x.jpg"},  # relative
        {"image_url": "ftp://shop.example/p/x.jpg"},
        {"image_url": "https:///p/x.jpg"},  # no host
        {"image_url": "javascript:alert(1)"},
    ],
)
async def test_a_picture_without_an_absolute_url_is_refused_not_dropped(
    make: Make, fake: FakeTwilio, image: dict[str, str]
) -> None:
    provider = await make()
    (refused,) = await provider.send([out("l", **image)])
    assert isinstance(refused, PermanentError)
    assert refused.code == "media-url"
    assert "server.public_url" in refused.reason
    assert fake.requests == []


async def test_body_over_1600_chars_is_refused_before_sending(make: Make, fake: FakeTwilio) -> None:
    provider = await make()
    ok, too_long = await provider.send([out("a", text="x" * 1600), out("b", text="x" * 1601)])
    assert isinstance(ok, SendResult)
    assert isinstance(too_long, PermanentError)
    assert "1601" in too_long.reason
    assert "1600" in too_long.reason
    assert len(fake.requests) == 1


async def test_not_e164_or_no_phone_is_permanent(make: Make, fake: FakeTwilio) -> None:
    provider = await make()
    a, b = await provider.send(
        [out("a", to="010-2222-3333"), Outgoing(ref="b", recipient=Recipient(), text="hi")]
    )
    assert isinstance(a, PermanentError)
    assert "2222" not in str(a)
    assert isinstance(b, PermanentError)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("setup", "error", "code"),
    [
        (lambda f: f.opted_out.add(TO), OptedOut, "21610"),  # a PermanentError
        (lambda f: f.invalid.add(TO), PermanentError, "21211"),
        (lambda f: f.fail_next("429", retry_after=7), RateLimited, "20429"),
        (lambda f: f.fail_next("500"), UnknownOutcome, "500"),
        (lambda f: f.fail_next("503"), UnknownOutcome, "503"),
        (lambda f: f.fail_next("malformed"), UnknownOutcome, "bad-json"),
        (lambda f: f.fail_next("reset"), UnknownOutcome, "disconnected"),
        (lambda f: f.fail_next("timeout_after_record"), UnknownOutcome, "timeout"),
        (lambda f: f.fail_next("timeout_before_record"), UnknownOutcome, "timeout"),
        (lambda f: setattr(f, "auth_token", "rotated"), PermanentError, "auth"),
    ],
    ids=[
        "opted-out",
        "invalid",
        "429",
        "500",
        "503",
        "malformed",
        "reset",
        "timeout-after",
        "timeout-before",
        "auth",
    ],
)
async def test_failure_matrix(
    make: Make,
    fake: FakeTwilio,
    setup: Callable[[FakeTwilio], None],
    error: type[Exception],
    code: str,
) -> None:
    provider = await make(timeout=0.5)
    setup(fake)
    (outcome,) = await provider.send([out("1")])
    assert type(outcome) is error, outcome
    assert isinstance(outcome, PermanentError | TransientError | UnknownOutcome)
    assert outcome.code == code
    if isinstance(outcome, RateLimited):
        assert outcome.retry_after == 7
    if code == "21610":
        assert outcome.reason == "수신거부한 번호예요"
    if code == "auth":
        assert "auth_token" in outcome.reason
        assert AUTH_TOKEN not in str(outcome)


async def test_connection_refused_is_transient(make: Make) -> None:
    provider = await make(base_url="http://127.0.0.1:9")
    (outcome,) = await provider.send([out("1")])
    assert type(outcome) is TransientError
    assert outcome.code == "connect"
    with pytest.raises(CannotTell):  # the outbox never asks: it knows nothing left
        await provider.lookup(SendRef("1"))


@pytest.mark.parametrize("failure", ["timeout_after_record", "reset", "malformed", "500"])
async def test_unknown_outcome_is_reconciled_by_lookup_without_resending(
    make: Make, fake: FakeTwilio, failure: str
) -> None:
    provider = await make(timeout=0.5)
    fake.fail_next(failure)
    (outcome,) = await provider.send([out("42", text="Ready at 3pm")])
    assert isinstance(outcome, UnknownOutcome)
    recorded = fake.sent_to(TO)
    if failure == "500":
        assert recorded == []
        assert await provider.lookup(SendRef("42")) is None
        return
    assert len(recorded) == 1
    found = await provider.lookup(SendRef("42"))
    assert isinstance(found, SendResult)
    assert found.ref == "42"
    assert found.provider_message_id == recorded[0]["sid"]
    assert found.status == "accepted"
    # and by sid, as the outbox asks once it stored the id
    fake.set_status(recorded[0]["sid"], "delivered")
    by_sid = await provider.lookup(SendRef("42", recorded[0]["sid"]))
    assert by_sid is not None
    assert (by_sid.ref, by_sid.status) == ("42", "delivered")
    assert len(fake.requests) == 1  # no resend happened anywhere
    assert any("To=" in f for f in fake.fetches)


async def test_lookup_does_not_confuse_messages(make: Make, fake: FakeTwilio) -> None:
    provider = await make(timeout=0.5)
    (first,) = await provider.send([out("1", text="same text")])
    assert isinstance(first, SendResult)
    fake.fail_next("timeout_after_record")
    (second,) = await provider.send([out("2", text="same text")])
    assert isinstance(second, UnknownOutcome)
    found = await provider.lookup(SendRef("2"))
    assert found is not None
    assert found.provider_message_id != first.provider_message_id
    # a ref this process never attempted: cannot tell
    with pytest.raises(CannotTell):
        await provider.lookup(SendRef("99"))
    # a sid Twilio does not know: it gave us the sid, so "not found" is not "not sent"
    with pytest.raises(CannotTell):
        await provider.lookup(SendRef("1", "SM" + "f" * 32))


async def test_a_listing_too_full_to_reach_the_attempt_is_not_a_not_found(
    make: Make, fake: FakeTwilio
) -> None:
    """Twilio lists the newest 50: when all of them are newer than our attempt, ours may be
    further back, so "not on this page" must not become "not sent" (a resend)."""
    provider = await make(timeout=0.5)
    fake.fail_next("500")  # nothing recorded, the outcome unknown
    (lost,) = await provider.send([out("42", text="Ready at 3pm")])
    assert isinstance(lost, UnknownOutcome)
    assert await provider.lookup(SendRef("42")) is None  # a short page read in full
    await provider.send([out(str(100 + i), text=f"other {i}") for i in range(LOOKUP_PAGE_SIZE)])
    with pytest.raises(TransientError):
        await provider.lookup(SendRef("42"))


async def test_an_unreadable_lookup_answer_is_not_a_not_found(
    make: Make, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = await make(timeout=0.5)
    fake.fail_next("500")
    await provider.send([out("42")])

    async def garbled(*args: Any, **kwargs: Any) -> tuple[int, dict[str, str], str]:
        return 200, {}, '{"messages": "not a list"'

    monkeypatch.setattr(provider, "_request", garbled)
    with pytest.raises(UnknownOutcome):
        await provider.lookup(SendRef("42"))
    with pytest.raises(UnknownOutcome):
        await provider.lookup(SendRef("42", "SM" + "a" * 32))


async def test_repr_and_errors_never_show_the_auth_token(make: Make) -> None:
    provider = await make()
    assert AUTH_TOKEN not in repr(provider)
    assert AUTH_TOKEN not in str(provider)
    assert "********" in repr(provider)


def test_options_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"account_sid": ACCOUNT_SID, "auth_token": "t", "from_number": FROM}
    with pytest.raises(ProviderConfigError, match="exactly one"):
        TwilioProvider({**base, "messaging_service_sid": "MG" + "1" * 32})
    with pytest.raises(ProviderConfigError, match=r"E\.164"):
        TwilioProvider({**base, "from_number": "010-1234-5678"})
    with pytest.raises(ProviderConfigError, match="account_sid"):
        TwilioProvider({**base, "account_sid": "XX1"})
    with pytest.raises(ProviderConfigError, match="validity_period"):
        TwilioProvider({**base, "validity_period": 0})
    monkeypatch.setenv("DANGOL_TWILIO_TOKEN", "from-env-token")
    provider = default_registry.create(
        "twilio",
        {"account_sid": ACCOUNT_SID, "auth_token_env": "DANGOL_TWILIO_TOKEN", "from_number": FROM},
        None,
    )
    assert provider.options["auth_token"] == "from-env-token"
    assert "from-env-token" not in repr(provider)


# --------------------------------------------------------------------------- status callbacks


def _parsed(form: dict[str, str]) -> DeliveryReport:
    report = parse_status(form)
    assert report is not None
    return report


def test_parse_status_maps_twilio_statuses() -> None:
    sid = "SM" + "a" * 32
    assert _parsed(status_callback_form(sid, "sent")).status == "sent"
    assert _parsed(status_callback_form(sid, "queued")).status == "sent"
    delivered = _parsed(status_callback_form(sid, "delivered"))
    assert (delivered.message_id, delivered.status, delivered.code) == (
        sid,
        "delivered",
        None,
    )
    assert delivered.event_id == f"{sid}:delivered"
    failed = _parsed(status_callback_form(sid, "undelivered", error_code="30007"))
    assert failed.status == "failed"
    assert failed.code == "30007"
    assert "스팸" in failed.reason
    assert not failed.opted_out
    opted = _parsed(status_callback_form(sid, "failed", error_code="21610"))
    assert opted.opted_out
    assert opted.reason == "수신거부한 번호예요"
    assert parse_status({"MessageSid": sid, "MessageStatus": "received"}) is None
    with pytest.raises(ValueError, match="status callback"):
        parse_status({"Body": "hi"})


def test_status_only_moves_forward() -> None:  # the one order (providers.base)
    assert status_advances(None, "sent")
    assert status_advances("queued", "sent")
    assert status_advances("sent", "delivered")
    assert status_advances("sent", "failed")
    assert not status_advances("delivered", "sent")  # a late "sent" never undoes delivery
    assert not status_advances("delivered", "failed")
    assert not status_advances("failed", "sent")
    assert not status_advances("sent", "sent")


# --------------------------------------------------------------------------- inbound SMS


def test_parse_inbound_fixture() -> None:
    raw = (PAYLOADS / "inbound-sms.form").read_text().strip()
    form = dict(parse_qsl(raw, keep_blank_values=True))
    sms = parse_inbound(form)
    assert sms.message_sid == "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    assert (sms.from_e164, sms.to_e164) == ("+14155550123", "+14155550199")
    assert sms.body == "Can you come Tuesday?"
    assert sms.media == []
    assert sms.opt_out is None
    assert sms.account_sid == "AC11112222333344445555666677778888"
    assert "0123" in repr(sms)  # last four only
    assert "5550123" not in repr(sms)
    assert "Tuesday" not in repr(sms)


def test_parse_inbound_media() -> None:
    media = [
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "image/jpeg"),
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2", "image/png"),
    ]
    sms = parse_inbound(inbound_sms_form("", media=media))
    assert sms.media == media
    with pytest.raises(ValueError, match="inbound"):
        parse_inbound({"Body": "hi"})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", "stop"),
        ("stop", "stop"),
        (" Unsubscribe ", "stop"),
        ("END", "stop"),
        ("quit", "stop"),
        ("STOPALL", "stop"),
        ("revoke", "stop"),
        ("OPTOUT", "stop"),
        ("Cancel", "stop"),
        ("stop.", "stop"),
        ("START", "start"),
        ("yes", "start"),
        ("UNSTOP", "start"),
        ("Please stop by at 3", None),
        ("Can you come Tuesday?", None),
        ("HELP", None),
    ],
)
def test_opt_out_words(body: str, expected: str | None) -> None:
    assert parse_inbound(inbound_sms_form(body)).opt_out == expected


def test_opt_out_type_field_wins() -> None:
    assert parse_inbound(inbound_sms_form("아니요 그만", opt_out_type="STOP")).opt_out == "stop"
    assert parse_inbound(inbound_sms_form("다시 받을게요", opt_out_type="START")).opt_out == "start"
