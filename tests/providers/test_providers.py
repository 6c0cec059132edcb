"""The provider seam: the contract every adapter keeps, the console, the fake, the registry."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from typing import Any

import pytest

from providers.base import (
    CannotTell,
    Capability,
    Option,
    Outgoing,
    PermanentError,
    Provider,
    ProviderConfigError,
    ProviderError,
    Recipient,
    SendRef,
    SendResult,
    TokenBucket,
    TransientError,
    UnknownOutcome,
    mask_in_text,
    mask_phone,
    validate_options,
)
from providers.console import ConsoleProvider
from providers.fake import FakeProvider
from providers.registry import Providers, Registry, default_registry

PHONE = "+821022223333"


def outgoing(ref: str = "1", phone: str | None = PHONE, text: str = "안녕하세요") -> Outgoing:
    return Outgoing(ref=ref, recipient=Recipient(phone=phone), text=text, purpose="reply")


# --------------------------------------------------------------------------- the contract

# Options each registered provider is built with in the contract test; the secret-looking
# values must never show in repr(). A new adapter adds its line here (the test insists).
CONTRACT_OPTIONS: dict[str, dict[str, Any]] = {
    "console": {"show_text": False},
    "fake": {"api_secret": "s3cr3t-do-not-print"},
    # the contract's recipients have no callback URL: every message is refused locally
    "kakao_callback": {"base_url": "http://127.0.0.1:9", "timeout": 2.0},
    # the contract's recipients have phone numbers only: every message is refused locally
    # (PermanentError, no Kakao user key); port 9 in case one ever gets through
    "kakao_event": {
        "rest_api_key": "kak40-rest-key-do-not-print",
        "bot_id": "66a1e9d0e4b0a1b2c3d4e000",
        "event_name": "owner_reply",
        "base_url": "http://127.0.0.1:9",
        "timeout_seconds": 2.0,
    },
    # SOLAPI on a closed loopback port: every message comes back as a TransientError outcome
    "solapi": {
        "api_key": "NCSCONTRACTKEY01",
        "api_secret": "s0lapi-s3cr3t-do-not-print",
        "sender": "0212345678",
        "base_url": "http://127.0.0.1:9",
    },
    # nothing listens on port 9: every message comes back as a TransientError outcome
    "twilio": {
        "account_sid": "AC" + "0" * 32,
        "auth_token": "tw-t0ken-do-not-print",
        "from_number": "+14155550199",
        "base_url": "http://127.0.0.1:9",
        "timeout": 2.0,
    },
}


def test_every_registered_provider_is_in_the_contract_table() -> None:
    assert set(default_registry.names()) == set(CONTRACT_OPTIONS)  # the fake: by conftest


def test_the_production_registry_does_not_know_the_fake() -> None:
    """Only the tests register the test double (conftest): a fresh interpreter's registry,
    which is what `dangol serve` reads a config with, refuses `[providers.fake]`."""
    code = "from providers.registry import default_registry as r; print(sorted(r.names()))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert ast.literal_eval(out) == sorted(set(CONTRACT_OPTIONS) - {"fake"})


@pytest.mark.parametrize("name", sorted(CONTRACT_OPTIONS))
async def test_provider_contract(name: str) -> None:
    cls = default_registry.get(name)
    assert isinstance(cls.name, str)
    assert cls.name.strip() == cls.name == name
    assert [c.name for c in default_registry.classes()].count(cls.name) == 1
    assert isinstance(cls.capabilities, Capability)
    assert cls.max_text_chars > 0
    assert cls.rate_per_second is None or cls.rate_per_second > 0

    options = CONTRACT_OPTIONS[name]
    provider = default_registry.create(name, options, None)
    await provider.start()
    try:
        batch = [outgoing("101", "+821011112222"), outgoing("102", "+821033334444")]
        outcomes = await provider.send(batch)
        assert len(outcomes) == 2
        for msg, outcome in zip(batch, outcomes, strict=True):
            assert isinstance(outcome, SendResult | ProviderError)
            if isinstance(outcome, SendResult):
                assert outcome.ref == msg.ref
                assert outcome.status in ("accepted", "delivered")
                assert outcome.path
        try:
            found = await provider.lookup(SendRef("101"))
        except CannotTell:  # this provider cannot search for a send by our ref
            found = None
        except ProviderError:  # the search failed (the vendor is unreachable): not "not found"
            found = None
        assert found is None or found.ref == "101"
    finally:
        await provider.close()

    shown = repr(provider)
    assert name in shown
    for key, value in options.items():
        if any(word in key for word in ("secret", "token", "key", "password")):
            assert str(value) not in shown
            assert str(value) not in str(provider)


@pytest.mark.parametrize("name", sorted(CONTRACT_OPTIONS))
def test_provider_rejects_unknown_options_naming_the_key(name: str) -> None:
    with pytest.raises(ProviderConfigError, match=rf"providers\.{name}\.colour"):
        default_registry.create(name, {"colour": "blue"}, None)


# --------------------------------------------------------------------------- options


def test_options_validation_names_the_key_and_fills_defaults() -> None:
    spec = {
        "sender": Option(str, required=True),
        "rate": Option(float, default=1.0, minimum=0.1),
        "api_secret": Option(str, secret=True),
    }
    assert validate_options("x", spec, {"sender": "0212345678", "rate": 2}) == {
        "sender": "0212345678",
        "rate": 2,
        "api_secret": None,
    }
    with pytest.raises(ProviderConfigError, match=r"providers\.x\.sender: is required"):
        validate_options("x", spec, {})
    with pytest.raises(ProviderConfigError, match=r"providers\.x\.rate: must be at least"):
        validate_options("x", spec, {"sender": "1", "rate": 0.0})
    with pytest.raises(ProviderConfigError, match=r"providers\.x\.rate: expected float"):
        validate_options("x", spec, {"sender": "1", "rate": True})
    with pytest.raises(ProviderConfigError, match="did you mean 'sender'"):
        validate_options("x", spec, {"sendr": "1"})
    # a wrong-typed secret is not echoed back in the error
    with pytest.raises(ProviderConfigError) as info:
        validate_options("x", spec, {"sender": "1", "api_secret": 123456789})
    assert "123456789" not in str(info.value)


def test_secret_options_come_from_the_environment() -> None:
    spec = {"api_secret": Option(str, secret=True, required=True)}
    env = {"SOLAPI_SECRET": "from-env"}
    got = validate_options("s", spec, {"api_secret_env": "SOLAPI_SECRET"}, environ=env)
    assert got == {"api_secret": "from-env"}
    with pytest.raises(ProviderConfigError, match="environment variable NOPE is not set"):
        validate_options("s", spec, {"api_secret_env": "NOPE"}, environ=env)


def test_repr_hides_secret_looking_options() -> None:
    fake = FakeProvider({"api_secret": "hunter2-hunter2"})
    assert "hunter2" not in repr(fake)
    assert "********" in repr(fake)
    assert "fake" in repr(fake)


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+821022223333", "010-****-3333"),
        ("010-2222-3333", "010-****-3333"),
        ("+82212345678", "02-****-5678"),
        ("+14155550123", "+141****0123"),
        ("123", "***"),
    ],
)
def test_mask_phone(number: str, masked: str) -> None:
    assert mask_phone(number) == masked


def test_mask_in_text_and_value_reprs_hide_numbers_and_bodies() -> None:
    assert mask_in_text("수신거부 번호 01022223333 입니다") == "수신거부 번호 010-****-3333 입니다"
    msg = outgoing(text="비밀 본문")
    assert "2222" not in repr(msg)
    assert "비밀" not in repr(msg)
    assert "2222" not in str(PermanentError("bad number +821022223333", code="3059"))


# --------------------------------------------------------------------------- console


async def test_console_logs_a_masked_phone_and_the_text(caplog: pytest.LogCaptureFixture) -> None:
    console = ConsoleProvider({"show_text": True}, None)  # as `dangol demo` runs it
    caplog.set_level(logging.INFO, logger="dangol.console")
    (result,) = await console.send([outgoing("7", PHONE, "내일 오전 10시 방문\n예정입니다")])
    assert isinstance(result, SendResult)
    assert (result.ref, result.status, result.path) == ("7", "delivered", "console")
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert caplog.records[0].name == "dangol.console"
    assert caplog.records[0].levelno == logging.INFO
    assert line.startswith("[console]")
    assert "010-****-3333" in line
    assert "내일 오전 10시 방문" in line
    assert "\n" not in line
    for leak in ("2222", "01022223333", PHONE):
        assert leak not in line
    assert list(console.sent)[-1].ref == "7"
    assert await console.lookup(SendRef("7")) == result


async def test_console_keeps_the_last_200() -> None:
    console = ConsoleProvider({"show_text": False}, None)
    for i in range(205):
        await console.send([outgoing(str(i))])
    assert len(console.sent) == 200
    assert console.sent[0].ref == "5"
    assert await console.lookup(SendRef("3")) is None


# --------------------------------------------------------------------------- fake


async def test_fake_scripts_failures_deterministically() -> None:
    fake = FakeProvider()
    fake.fail_next(TransientError("503"), times=2)
    for _ in range(2):
        with pytest.raises(TransientError):
            await fake.send([outgoing("1")])
    fake.fail_for("+821099998888", PermanentError("수신거부 번호"))
    out = await fake.send([outgoing("1"), outgoing("2", "+821099998888")])
    assert isinstance(out[0], SendResult)
    assert isinstance(out[1], PermanentError)
    assert len(fake.calls) == 3
    assert fake.sent_refs() == ["1"]

    fake.outcome_unknown_next()
    with pytest.raises(UnknownOutcome):
        await fake.send([outgoing("3")])
    found = await fake.lookup(SendRef("3"))
    assert found is not None
    assert found.ref == "3"
    assert await fake.lookup(SendRef("404")) is None


# --------------------------------------------------------------------------- registry


class _Dup(FakeProvider):
    name = "fake"


def test_registry_refuses_duplicate_names() -> None:
    registry = Registry()
    registry.register(FakeProvider)
    with pytest.raises(ValueError, match="already taken"):
        registry.register(_Dup)
    with pytest.raises(ProviderConfigError, match="unknown provider"):
        registry.create("nope", {}, None)
    assert registry.names() == ("fake",)


def test_registry_refuses_a_provider_without_a_name() -> None:
    class Nameless(FakeProvider):
        name = ""

    with pytest.raises(ValueError, match="non-empty"):
        Registry().register(Nameless)


class _Recorder(FakeProvider):
    order: list[str]

    def __init__(self, label: str, order: list[str], fail_start: bool = False) -> None:
        super().__init__()
        self.label, self.order, self.fail_start = label, order, fail_start

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("no")
        self.order.append(f"start {self.label}")

    async def close(self) -> None:
        self.order.append(f"close {self.label}")


async def test_providers_close_in_reverse_and_only_the_started() -> None:
    order: list[str] = []
    providers = Providers({"a": _Recorder("a", order), "b": _Recorder("b", order)})
    await providers.start_all()
    await providers.close_all()
    assert order == ["start a", "start b", "close b", "close a"]

    order.clear()
    broken = Providers(
        {
            "a": _Recorder("a", order),
            "b": _Recorder("b", order, fail_start=True),
            "c": _Recorder("c", order),
        }
    )
    with pytest.raises(RuntimeError):
        await broken.start_all()
    assert order == ["start a", "close a"]


def test_providers_from_config() -> None:
    providers = Providers.from_config({"console": {}, "fake": {"path": "sms"}}, None)
    assert providers.names() == ("console", "fake")
    assert isinstance(providers["fake"], FakeProvider)
    with pytest.raises(ProviderConfigError, match=r"providers\.twilio"):
        Providers.from_config({"twilio": {}}, None)


def test_provider_is_abstract() -> None:
    with pytest.raises(TypeError):
        Provider({}, None)  # type: ignore[abstract]


# --------------------------------------------------------------------------- token bucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_token_bucket_limits_the_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(2.0, capacity=2, monotonic=t.monotonic, sleep=t.sleep)
    for _ in range(10):
        await bucket.acquire()
    # 2 in the burst, then 8 more at 2 per second
    assert t.now == pytest.approx(4.0)
    t.now += 10  # idle: refills only up to capacity
    await bucket.acquire(2)
    assert t.now == pytest.approx(14.0)
    waited = await bucket.acquire(5)  # more than the bucket holds: waits, never hangs
    assert waited == pytest.approx(2.5)


def test_capabilities_combine() -> None:
    caps = FakeProvider.capabilities
    assert Capability.INITIATE in caps
    assert Capability.TEMPLATE_REQUIRED not in caps
