"""Kakao Event API adapter against the fake Event API on 127.0.0.1 (tests/fakes/kakao_event.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from conftest import FIXTURES
from fakes.kakao_event import BOT_ID, EVENT_NAME, REST_API_KEY, FakeKakaoEvent

from providers.base import (
    CannotTell,
    Capability,
    Outgoing,
    PermanentError,
    ProviderConfigError,
    ProviderError,
    RateLimited,
    Recipient,
    SendRef,
    SendResult,
    TransientError,
    UnknownOutcome,
)
from providers.kakao_event import (
    KakaoEventAccountError,
    KakaoEventProvider,
    classify_fail,
    error_for,
    read_talk_answer,
    read_task,
    talk_body,
)
from providers.registry import default_registry

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
KEY = "7d1c0b7e9a2f4e3d8c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3"


def key(n: int) -> str:
    return f"{n:04d}" + "b" * 60


def out(
    ref: str = "1",
    user: str | None = KEY,
    text: str = "네 내일 오전 10시에 방문드리겠습니다.",
    key_type: str | None = None,
    **kw: Any,
) -> Outgoing:
    recipient = Recipient(kakao_user_key=user, kakao_key_type=key_type)
    return Outgoing(ref=ref, recipient=recipient, text=text, purpose="reply", **kw)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


Make = Callable[..., Awaitable[KakaoEventProvider]]


@pytest.fixture
def fake() -> FakeKakaoEvent:
    return FakeKakaoEvent()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def make(fake: FakeKakaoEvent, fake_time: FakeTime) -> AsyncIterator[Make]:
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    made: list[KakaoEventProvider] = []

    async def build(**options: Any) -> KakaoEventProvider:
        opts: dict[str, Any] = {
            "rest_api_key": REST_API_KEY,
            "bot_id": BOT_ID,
            "event_name": EVENT_NAME,
            "base_url": str(server.make_url("")),
            # Roomy: a loaded CI host once took over a second for 100 users on loopback;
            # the timeout tests set their own.
            "timeout_seconds": 10.0,
        }
        opts.update(options)
        opts = {k: v for k, v in opts.items() if v is not None}
        provider = KakaoEventProvider(
            opts, clock=lambda: NOW, monotonic=fake_time.monotonic, sleep=fake_time.sleep
        )
        await provider.start()
        made.append(provider)
        return provider

    yield build
    fake.release()
    for provider in made:
        await provider.close()
    await server.close()


# --------------------------------------------------------------------------- the wire


def test_body_is_the_fixture() -> None:
    fixture = json.loads((FIXTURES / "kakao" / "event-api-request.json").read_text())
    user = fixture["user"][0]
    body = talk_body(
        fixture["event"]["name"], fixture["event"]["data"]["text"], [(user["type"], user["id"])]
    )
    assert body == fixture


async def test_send_posts_the_fixture_body(make: Make, fake: FakeKakaoEvent) -> None:
    fixture = json.loads((FIXTURES / "kakao" / "event-api-request.json").read_text())
    provider = await make(event_name=fixture["event"]["name"])
    fake.event_names.add(fixture["event"]["name"])
    user = fixture["user"][0]
    msg = out(
        "7",
        user=user["id"],
        text=fixture["event"]["data"]["text"],
        key_type=user["type"],
        subject="제목은 어디에도 없어요",
    )
    (result,) = await provider.send([msg])
    assert isinstance(result, SendResult)
    assert (result.ref, result.status, result.path) == ("7", "accepted", "event_api")
    assert result.provider_message_id in fake.talks
    assert fake.requests == [fixture]
    assert "제목은" not in json.dumps(fake.requests, ensure_ascii=False)


def test_the_fixture_response_is_read_as_accepted() -> None:
    raw = (FIXTURES / "kakao" / "event-api-response.json").read_text()
    assert read_talk_answer(raw) == json.loads(raw)["taskId"]
    assert read_talk_answer('{"status": "SUCCESS"}') is None  # accepted, nothing to look up
    with pytest.raises(UnknownOutcome):
        read_talk_answer('{"taskId": "')
    with pytest.raises(UnknownOutcome):
        read_talk_answer('{"status": "QUEUED"}')
    with pytest.raises(KakaoEventAccountError):
        read_talk_answer('{"status": "FAIL", "message": "Invalid bot id"}')


async def test_key_type_defaults_to_bot_user_key(make: Make, fake: FakeKakaoEvent) -> None:
    provider = await make()
    await provider.send([out("1", user=key(1)), out("2", user=key(2), key_type="appUserId")])
    types = [u["type"] for r in fake.requests for u in r["user"]]
    assert sorted(types) == ["appUserId", "botUserKey"]


# --------------------------------------------------------------------------- batching


async def test_identical_texts_share_a_request(make: Make, fake: FakeKakaoEvent) -> None:
    provider = await make()
    batch = [
        out("a", user=key(1), text="같은 안내"),
        out("b", user=key(2), text="다른 안내"),
        out("c", user=key(3), text="같은 안내"),
        out("d", user=key(4), text="같은 안내"),
    ]
    outcomes = await provider.send(batch)
    assert [o.ref for o in outcomes if isinstance(o, SendResult)] == ["a", "b", "c", "d"]
    assert len(fake.requests) == 2
    assert [u["id"] for u in fake.requests[0]["user"]] == [key(1), key(3), key(4)]
    assert fake.requests[0]["event"]["data"] == {"text": "같은 안내"}
    assert [u["id"] for u in fake.requests[1]["user"]] == [key(2)]
    ids = {o.ref: o.provider_message_id for o in outcomes if isinstance(o, SendResult)}
    assert ids["a"] == ids["c"] == ids["d"] != ids["b"]


async def test_more_than_100_users_are_split(
    make: Make, fake: FakeKakaoEvent, fake_time: FakeTime
) -> None:
    provider = await make()
    batch = [out(str(i), user=key(i), text="휴무 안내") for i in range(250)]
    outcomes = await provider.send(batch)
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert [len(r["user"]) for r in fake.requests] == [100, 100, 50]
    sent = [u["id"] for r in fake.requests for u in r["user"]]
    assert sent == [key(i) for i in range(250)]
    assert fake_time.slept == []  # 3 requests: inside the burst, one token a request


async def test_duplicate_users_never_share_a_request(make: Make, fake: FakeKakaoEvent) -> None:
    provider = await make()
    outcomes = await provider.send(
        [out("1", user=key(1)), out("2", user=key(1)), out("3", user=key(2))]
    )
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert [[u["id"] for u in r["user"]] for r in fake.requests] == [[key(1), key(2)], [key(1)]]
    ids = [o.provider_message_id for o in outcomes if isinstance(o, SendResult)]
    assert ids[0] == ids[2] != ids[1]


async def test_a_repeated_ref_is_refused(make: Make, fake: FakeKakaoEvent) -> None:
    provider = await make()
    first, again = await provider.send([out("1", user=key(1)), out("1", user=key(2))])
    assert isinstance(first, SendResult)
    assert isinstance(again, PermanentError)
    assert again.code == "dup_ref"


async def test_requests_are_throttled(
    make: Make, fake: FakeKakaoEvent, fake_time: FakeTime
) -> None:
    provider = await make()
    assert provider.rate_limit is not None
    rate = KakaoEventProvider.rate_per_second
    assert rate is not None
    batch = [out(str(i), user=key(i), text=f"안내 {i}") for i in range(int(rate) + 3)]
    await provider.send(batch)
    assert len(fake.requests) == len(batch)
    assert fake_time.now == pytest.approx(3 / rate)  # the burst, then one request per 1/rate


# --------------------------------------------------------------------------- local refusals


async def test_messages_it_cannot_carry_never_reach_kakao(make: Make, fake: FakeKakaoEvent) -> None:
    provider = await make()
    outcomes = await provider.send(
        [
            Outgoing(ref="phone", recipient=Recipient(phone="+821022223333"), text="안녕하세요"),
            out("type", key_type="kakaoAccountId"),
            out("ad", informational=False, text="(광고) 할인 안내"),
            out("image", image_path="/var/photos/1.jpg"),
            out("url", image_url="https://shop.example/photos/1.jpg"),
            out("empty", text="  "),
            out("long", text="가" * 1001),
        ]
    )
    codes = [o.code if isinstance(o, PermanentError) else o for o in outcomes]
    assert codes == [
        "no_kakao_key",
        "bad_key_type",
        "ad_on_event_api",
        "image",
        "image",
        "empty",
        "too_long",
    ]
    assert fake.requests == []
    first = outcomes[0]
    assert isinstance(first, PermanentError)
    assert "카카오 사용자 키" in first.reason
    (ok,) = await provider.send([out("max", text="가" * 1000)])
    assert isinstance(ok, SendResult)


def test_capabilities() -> None:
    caps = KakaoEventProvider.capabilities
    assert Capability.INITIATE in caps
    assert Capability.INFO_ONLY in caps
    assert Capability.DELIVERY_REPORTS in caps
    assert Capability.IMAGES not in caps
    assert Capability.TEMPLATE_REQUIRED not in caps
    assert KakaoEventProvider.max_text_chars == 1000
    assert "kakao_event" in default_registry


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("setup", "error", "code", "recorded"),
    [
        (lambda f: f.fail_next("429", retry_after=7), RateLimited, "429", 0),
        (lambda f: f.fail_next("500"), TransientError, "500", 0),
        (lambda f: f.fail_next("503"), TransientError, "503", 0),
        (lambda f: f.fail_next("malformed"), UnknownOutcome, "bad_json", 1),
        (lambda f: f.fail_next("reset"), UnknownOutcome, "disconnected", 1),
        (lambda f: f.fail_next("timeout_after_record"), UnknownOutcome, "timeout", 1),
        (lambda f: f.fail_next("timeout_before_record"), UnknownOutcome, "timeout", 0),
        (lambda f: setattr(f, "rest_api_key", "f" * 32), KakaoEventAccountError, "auth", 0),
        (lambda f: setattr(f, "bot_id", "another-bot"), KakaoEventAccountError, "bot_id", 0),
        (lambda f: f.event_names.clear(), KakaoEventAccountError, "event_name", 0),
    ],
    ids=[
        "429",
        "500",
        "503",
        "malformed",
        "reset",
        "timeout-after",
        "timeout-before",
        "auth",
        "bot-id",
        "event-name",
    ],
)
async def test_failure_matrix(
    make: Make,
    fake: FakeKakaoEvent,
    setup: Callable[[FakeKakaoEvent], None],
    error: type[ProviderError],
    code: str,
    recorded: int,
) -> None:
    provider = await make(timeout_seconds=0.3)
    setup(fake)
    batch = [out("1", user=key(1)), out("2", user=key(2))]
    outcomes = await provider.send(batch)
    for outcome in outcomes:  # one shared request: the same outcome for both
        assert type(outcome) is error, outcome
        assert isinstance(outcome, ProviderError)
        assert outcome.code == code
        assert REST_API_KEY not in str(outcome)
    assert len(fake.talks) == recorded
    if isinstance(outcomes[0], RateLimited):
        assert outcomes[0].retry_after == 7
    if code == "auth":
        assert isinstance(outcomes[0], ProviderError)
        assert "REST API 키" in outcomes[0].reason
    if isinstance(outcomes[0], UnknownOutcome):
        # no taskId came back: nothing to ask Kakao about, and no blind resend either
        with pytest.raises(CannotTell):
            await provider.lookup(SendRef("1"))
        assert fake.fetches == []
        assert len(fake.talks) == recorded


async def test_connection_refused_is_transient(make: Make) -> None:
    provider = await make(base_url="http://127.0.0.1:9")
    (outcome,) = await provider.send([out("1")])
    assert type(outcome) is TransientError
    assert outcome.code == "connect"


async def test_one_refused_user_does_not_sink_a_shared_request(
    make: Make, fake: FakeKakaoEvent
) -> None:
    provider = await make()
    fake.refused.add(key(2))
    outcomes = await provider.send([out(str(i), user=key(i), text="공지") for i in range(1, 4)])
    assert isinstance(outcomes[0], SendResult)
    assert isinstance(outcomes[2], SendResult)
    bad = outcomes[1]
    assert type(bad) is PermanentError
    assert bad.code == "bad_user"
    assert key(2) not in str(bad)  # the echoed key is masked
    # the shared request, then one per user
    assert [len(r["user"]) for r in fake.requests] == [3, 1, 1, 1]
    assert len(fake.talks) == 2


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (401, {"code": -401, "msg": "wrong appKey format"}, KakaoEventAccountError, "auth"),
        (403, {}, KakaoEventAccountError, "auth"),
        (404, {}, KakaoEventAccountError, "not_found"),
        (400, {"status": "FAIL", "message": "Invalid bot id"}, KakaoEventAccountError, "bot_id"),
        (400, {"status": "FAIL", "message": "Invalid JSON"}, PermanentError, "fail"),
        (408, {}, TransientError, "408"),
        (502, {}, TransientError, "502"),
        (504, {}, UnknownOutcome, "504"),
    ],
)
def test_error_for(status: int, body: dict[str, Any], error: type, code: str) -> None:
    got = error_for(status, {}, json.dumps(body).encode(), NOW)
    assert type(got) is error
    assert got.code == code


def test_retry_after_as_a_date() -> None:
    got = error_for(429, {"Retry-After": "Mon, 23 Nov 2026 01:00:30 GMT"}, b"", NOW)
    assert isinstance(got, RateLimited)
    assert got.retry_after == 30


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Invalid api key", "auth"),
        ("Unauthorized", "auth"),
        ("invalid bot id", "bot_id"),
        ("event not found", "event_name"),
        ("wallet is not linked", "wallet"),
        ("Invalid botUserKey", "bad_user"),
        ("Invalid JSON", "fail"),
        ("", "fail"),
    ],
)
def test_classify_fail(message: str, code: str) -> None:
    assert classify_fail(message).code == code


# --------------------------------------------------------------------------- lookup


async def test_lookup_delivered(make: Make, fake: FakeKakaoEvent) -> None:
    provider = await make()
    (sent,) = await provider.send([out("1")])
    assert isinstance(sent, SendResult)
    found = await provider.lookup(SendRef("1", sent.provider_message_id))
    assert isinstance(found, SendResult)
    assert (found.ref, found.status, found.path) == ("1", "delivered", "event_api")
    assert found.provider_message_id == sent.provider_message_id
    assert fake.fetches == [sent.provider_message_id]


@pytest.mark.parametrize(
    ("mark", "code"),
    [("not_friend", "not_friend"), ("blocked", "blocked"), ("bad_key", "bad_user_key")],
)
async def test_lookup_finds_our_failed_user_in_a_shared_task(
    make: Make, fake: FakeKakaoEvent, mark: str, code: str
) -> None:
    provider = await make()
    getattr(fake, mark).add(key(2))
    outcomes = await provider.send([out(str(i), user=key(i), text="공지") for i in range(1, 4)])
    task = {o.provider_message_id for o in outcomes if isinstance(o, SendResult)}
    assert len(task) == 1  # accepted, all in one task
    (task_id,) = task
    with pytest.raises(PermanentError) as info:
        await provider.lookup(SendRef("2", task_id))
    assert info.value.code == code
    assert key(2) not in str(info.value)
    for ref in ("1", "3"):
        found = await provider.lookup(SendRef(ref, task_id))
        assert found is not None
        assert (found.ref, found.status) == (ref, "delivered")


async def test_lookup_pending_and_unknown_tasks(make: Make, fake: FakeKakaoEvent) -> None:
    provider = await make()
    fake.hold_tasks = True
    (sent,) = await provider.send([out("1")])
    assert isinstance(sent, SendResult)
    pending = await provider.lookup(SendRef("1", sent.provider_message_id))
    assert pending is not None
    assert pending.status == "accepted"  # the task exists: Kakao took the talk
    fake.finish_tasks()
    found = await provider.lookup(SendRef("1", sent.provider_message_id))
    assert found is not None
    assert found.status == "delivered"
    with pytest.raises(CannotTell):  # gone, or never ours: not a "not sent" either way
        await provider.lookup(SendRef("1", "no-such-task"))
    with pytest.raises(CannotTell):  # no taskId: nothing to search by
        await provider.lookup(SendRef("1"))


async def test_lookup_after_a_restart(make: Make, fake: FakeKakaoEvent) -> None:
    before = await make()
    fake.not_friend.add(key(2))
    shared = await before.send([out(str(i), user=key(i), text="공지") for i in range(1, 4)])
    (alone,) = await before.send([out("9", user=key(2), text="혼자")])
    assert isinstance(shared[0], SendResult)
    assert isinstance(alone, SendResult)
    after = await make()  # a new process: it does not know who was in which task
    # a mixed task: which entry is ours is unknown, but the task proves it was accepted
    mixed = await after.lookup(SendRef("1", shared[0].provider_message_id))
    assert mixed is not None
    assert mixed.status == "accepted"
    # a one-user task: the failed user is ours
    with pytest.raises(PermanentError, match="친구"):
        await after.lookup(SendRef("9", alone.provider_message_id))
    fake.not_friend.clear()
    found = await after.lookup(SendRef("1", shared[0].provider_message_id))
    assert found is not None
    assert found.status == "delivered"  # everyone got it


async def test_lookup_trouble_means_ask_again(make: Make, fake: FakeKakaoEvent) -> None:
    """A lookup that could not search raises a TransientError (the outbox asks again
    later); it never answers "not found", which would allow a resend."""
    provider = await make()
    (sent,) = await provider.send([out("1")])
    assert isinstance(sent, SendResult)
    fake.rest_api_key = "rotated-rotated-rotated-rotated0"
    with pytest.raises(TransientError):
        await provider.lookup(SendRef("1", sent.provider_message_id))
    dead = await make(base_url="http://127.0.0.1:9")
    with pytest.raises(TransientError):
        await dead.lookup(SendRef("1", sent.provider_message_id))


def test_read_task_is_tolerant() -> None:
    observed = {
        "taskId": "5f767a00-2ac6-408a-865b-be66ede611a2",
        "status": "ALL SUCCESS",
        "allRequestCount": 1,
        "successCount": 1,
        "fail": {"count": 0, "list": []},
    }
    task = read_task(observed)
    assert task is not None
    assert (task.status, task.finished, task.all_succeeded) == ("ALL_SUCCESS", True, True)

    other = read_task(
        {
            "status": "partial-success",
            "allRequestCount": "2",
            "successCount": "1",
            "fail": {"count": "1", "list": [{"userID": "abc", "errorMsg": "not friend"}]},
        }
    )
    assert other is not None
    assert other.failed == {"abc": "not friend"}
    assert other.finished
    assert not other.all_succeeded
    assert other.failed_list_complete

    nested = read_task({"status": "FAIL", "fail": {"list": [{"user": {"id": "k"}, "code": "X"}]}})
    assert nested is not None
    assert nested.failed == {"k": "X"}
    assert nested.all_failed

    pending = read_task({"status": "PENDING"})
    assert pending is not None
    assert not pending.finished
    running = read_task({"status": "PENDING", "allRequestCount": 3, "successCount": 0})
    assert running is not None
    assert not running.finished
    assert not running.all_failed

    for junk in (None, [], "SUCCESS", {}, {"taskId": "x"}):
        assert read_task(junk) is None


# --------------------------------------------------------------------------- secrets & options


async def test_logs_never_show_user_keys_or_bodies(
    make: Make, fake: FakeKakaoEvent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="dangol.providers.kakao_event")
    provider = await make()
    fake.refused.add(key(2))
    fake.blocked.add(key(3))
    outcomes = await provider.send(
        [out(str(i), user=key(i), text="비밀스러운 본문") for i in range(1, 4)]
    )
    task = outcomes[2]
    assert isinstance(task, SendResult)
    with pytest.raises(PermanentError):
        await provider.lookup(SendRef("3", task.provider_message_id))
    fake.fail_next("500")
    await provider.send([out("4", user=key(4))])
    text = caplog.text
    assert caplog.records
    for i in range(1, 5):
        assert key(i) not in text
    assert "비밀스러운" not in text
    assert REST_API_KEY not in text


async def test_repr_hides_the_rest_api_key(make: Make) -> None:
    provider = await make()
    assert REST_API_KEY not in repr(provider)
    assert REST_API_KEY not in str(provider)
    assert "********" in repr(provider)


def test_options_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"rest_api_key": REST_API_KEY, "bot_id": BOT_ID, "event_name": EVENT_NAME}
    for missing in ("rest_api_key", "bot_id", "event_name"):
        opts = {k: v for k, v in base.items() if k != missing}
        with pytest.raises(ProviderConfigError, match=rf"providers\.kakao_event\.{missing}:"):
            KakaoEventProvider(opts)
    with pytest.raises(ProviderConfigError, match=r"providers\.kakao_event\.bot_id"):
        KakaoEventProvider({**base, "bot_id": "../etc"})
    with pytest.raises(ProviderConfigError, match=r"providers\.kakao_event\.event_name"):
        KakaoEventProvider({**base, "event_name": " "})
    with pytest.raises(ProviderConfigError, match=r"providers\.kakao_event\.base_url"):
        KakaoEventProvider({**base, "base_url": "bot-api.kakao.com"})
    with pytest.raises(ProviderConfigError, match=r"providers\.kakao_event\.timeout_seconds"):
        KakaoEventProvider({**base, "timeout_seconds": 0})
    with pytest.raises(ProviderConfigError, match=r"providers\.kakao_event\.rest_api_key"):
        KakaoEventProvider({**base, "rest_api_key": "with blank"})
    with pytest.raises(ProviderConfigError) as info:
        KakaoEventProvider({**base, "rest_api_key": 1234567890})
    assert "1234567890" not in str(info.value)
    assert KakaoEventProvider({**base, "bot_id": BOT_ID + "!"}).talk_url.endswith(
        f"/v2/bots/{BOT_ID}!/talk"
    )

    monkeypatch.setenv("DANGOL_KAKAO_REST_KEY", "from-env-key-0000000000000000000")
    provider = default_registry.create(
        "kakao_event",
        {"rest_api_key_env": "DANGOL_KAKAO_REST_KEY", "bot_id": BOT_ID, "event_name": EVENT_NAME},
        None,
    )
    assert provider.options["rest_api_key"] == "from-env-key-0000000000000000000"
    assert provider.options["base_url"] == "https://bot-api.kakao.com"
    assert "from-env-key" not in repr(provider)
