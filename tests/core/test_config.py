"""Config: every key of the example parses, and mistakes are named precisely."""

from __future__ import annotations

import os
import re
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest
from conftest import settings_dict, shop_table

from core.config import (
    ConfigError,
    ConsoleConfig,
    Delivery,
    LoggingConfig,
    OutboxConfig,
    load,
    parse,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data, "shop.toml")
    return str(info.value)


def test_the_example_runs_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "x")
    settings = load(EXAMPLE)
    (shop,) = settings.shops
    assert shop.slug == "demo"
    assert shop.owner.phone == "+821022223333"
    assert shop.hours[6] is None  # Sunday closed
    assert settings.server.simulator is True
    assert settings.database.url.endswith("/var/dangol.db")  # relative to the file
    assert "console" in settings.providers


def test_missing_secret_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DANGOL_DEMO_SKILL_SECRET", raising=False)
    with pytest.raises(
        ConfigError,
        match=r"shops\[0\]\.kakao\.skill_secret_env: environment variable "
        r"DANGOL_DEMO_SKILL_SECRET is not set",
    ):
        load(EXAMPLE)


def test_secrets_never_show_in_repr() -> None:
    settings = parse(settings_dict(), "t.toml")
    shop = settings.shops[0]
    assert shop.kakao is not None
    assert os.environ["DANGOL_TEST_SKILL_SECRET"] not in repr(settings)
    assert shop.kakao.skill_secret.reveal() == os.environ["DANGOL_TEST_SKILL_SECRET"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"shops": [shop_table(hours={**shop_table()["hours"], "mon": "9-6"})]},
            'shop.toml: shops[0].hours.mon: expected "HH:MM-HH:MM" or "closed", got \'9-6\'',
        ),
        (
            {"shops": [shop_table(hours={**shop_table()["hours"], "tue": "09:00-09:00"})]},
            "shops[0].hours.tue: opens and closes at the same time: '09:00-09:00' (open all day "
            'is "00:00-24:00")',
        ),
        (
            {"shops": [shop_table(hours={**shop_table()["hours"], "tue": "24:00-09:00"})]},
            "shops[0].hours.tue: not a valid time range: '24:00-09:00'",
        ),
        ({"shops": [shop_table(slug="Han Bit")]}, "shops[0].slug: use lowercase letters"),
        ({"shops": [shop_table(timezone="Mars/Base")]}, "shops[0].timezone: unknown time zone"),
        (
            {"shops": [shop_table(hours_typo=1)]},
            "shops[0].hours_typo: unknown key (did you mean 'hours'?)",
        ),
        ({"shops": []}, "shops: add at least one [[shops]] table"),
        ({"shops": [shop_table(), shop_table()]}, "shops: every shop needs its own slug"),
        ({"server": {"port": "8080"}}, "server.port: expected a whole number, got '8080'"),
        (
            {"server": {"skill_budget_ms": 6000}},
            "server.skill_budget_ms: must stay below Kakao's 5 s limit",
        ),
        ({"database": {"url": "mysql://x"}}, "database.url: use sqlite+aiosqlite"),
        (
            {"shops": [shop_table(owner={"name": "김", "phone": "12"})]},
            "shops[0].owner.phone: not a valid phone number: '12'",
        ),
        (
            # echoed as written (it was "010--2222"): it is no number, so nothing to mask
            {"shops": [shop_table(owner={"name": "김", "phone": "010-2222"})]},
            "shops[0].owner.phone: not a valid phone number: '010-2222'",
        ),
        (
            # one digit too many: the real number in it is still masked
            {"shops": [shop_table(owner={"name": "김", "phone": "010 1234 5678 1"})]},
            "shops[0].owner.phone: not a valid phone number: '010-****-5678 1'",
        ),
        (
            {"shops": [shop_table(owner={"name": "김", "notify_via": ["pigeon"]})]},
            "shops[0].owner.notify_via: unknown provider 'pigeon'",
        ),
        (
            {
                "shops": [
                    shop_table(
                        faq=[
                            {"id": "a", "label": "아주아주아주아주아주긴라벨입니다", "answer": "x"}
                        ]
                    )
                ]
            },
            "shops[0].faq[0].label: must be at most 14 characters",
        ),
        ({"server": {"simulator": "yes"}}, "server.simulator: expected true or false, got 'yes'"),
        (
            {"outbox": {"lookup_give_up_seconds": 0}},
            "outbox.lookup_give_up_seconds: must be greater than 0",
        ),
    ],
)
def test_mistakes_are_named(change: dict[str, Any], expected: str) -> None:
    data = settings_dict()
    data.update(change)
    assert expected in error_of(data)


@pytest.mark.parametrize(
    ("written", "opens", "closes", "overnight", "label"),
    [
        ("09:00-18:00", time(9), time(18), False, "09:00~18:00"),
        ("22:00-02:00", time(22), time(2), True, "22:00~02:00"),
        ("9:00-24:00", time(9), time(0), True, "09:00~24:00"),
        ("00:00-24:00", time(0), time(0), True, "24시간"),
    ],
)
def test_hours_past_midnight_and_around_the_clock(
    written: str, opens: time, closes: time, overnight: bool, label: str
) -> None:
    data = settings_dict(shops=[shop_table(hours={**shop_table()["hours"], "fri": written})])
    hours = parse(data, "shop.toml").shops[0].hours[4]
    assert hours is not None
    assert (hours.opens, hours.closes, hours.overnight, hours.label()) == (
        opens,
        closes,
        overnight,
        label,
    )


def test_unreadable_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: file not found"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1", "utf-8")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load(bad)


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        ({"solapi": {"sender": "0212345678"}}, "providers.solapi.api_key: is required"),
        (
            {"solapi": {"api_key_env": "DANGOL_UNSET_FOR_TEST", "api_secret": "s", "sender": "02"}},
            "providers.solapi.api_key_env: environment variable DANGOL_UNSET_FOR_TEST is not set",
        ),
        ({"twilio": {"account_sid": "AC1", "auth_token": "t", "colour": "x"}}, "colour: unknown"),
        ({"kakao_event": {"bot_id": "b"}}, "providers.kakao_event.rest_api_key: is required"),
        ({"nosuch": {}}, "providers.nosuch: unknown provider"),
    ],
)
def test_provider_options_are_checked_with_the_config(
    providers: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong provider option or a missing secret stops check-config and serve at once,
    not the first send hours later."""
    monkeypatch.delenv("DANGOL_UNSET_FOR_TEST", raising=False)
    assert message in error_of(settings_dict(providers=providers))


def test_every_mistake_is_named_in_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five mistakes in five places: five lines, in the order they are written — [logging]
    comes last in this file although it is read before [providers] and [[shops]]."""
    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "x")
    monkeypatch.delenv("DANGOL_UNSET_FOR_TEST", raising=False)
    text = EXAMPLE.read_text("utf-8")
    [logging_section] = re.findall(r"\n\[logging\]\n(?:[^\[\n].*\n|\n)*", text)
    text = text.replace(logging_section, "\n")
    text = (
        text.replace("port = 8080", 'port = "8080"')
        .replace(
            "[providers.console]",
            '[providers.solapi]\napi_key_env = "DANGOL_UNSET_FOR_TEST"\napi_secret = "s"\n'
            'sender = "0212345678"\n\n[providers.console]',
        )
        .replace('mon = "09:00-18:00"', 'mon = "9-6"')
        .replace('phone = "010-2222-3333"', 'phone = "010-2222"')
    )
    text += '\n[logging]\nlevel = "LOUD"\n'
    path = tmp_path / "config.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).splitlines() == [
        f"{path}: server.port: expected a whole number, got '8080'",
        f"{path}: providers.solapi.api_key_env: environment variable DANGOL_UNSET_FOR_TEST is "
        "not set",
        f'{path}: shops[0].hours.mon: expected "HH:MM-HH:MM" or "closed", got \'9-6\'',
        f"{path}: shops[0].owner.phone: not a valid phone number: '010-2222'",
        f"{path}: logging.level: must be one of DEBUG, INFO, WARNING, ERROR; got 'LOUD'",
    ]
    assert [e.key for e in info.value.errors] == [
        "server.port",
        "providers.solapi.api_key_env",
        "shops[0].hours.mon",
        "shops[0].owner.phone",
        "logging.level",
    ]


def test_every_wrong_provider_option_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DANGOL_UNSET_FOR_TEST", raising=False)
    solapi = {"api_key_env": "DANGOL_UNSET_FOR_TEST", "sender": "02", "timeout": 0, "colour": 1}
    assert error_of(settings_dict(providers={"solapi": solapi})).splitlines() == [
        "shop.toml: providers.solapi.api_key_env: environment variable DANGOL_UNSET_FOR_TEST "
        "is not set",
        "shop.toml: providers.solapi.timeout: must be at least 0.01",
        "shop.toml: providers.solapi.colour: unknown option",
        "shop.toml: providers.solapi.api_secret: is required but missing",  # not written: last
    ]


without_slug = {k: v for k, v in shop_table().items() if k != "slug"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # a section that is unusable is one line, not one per key it should have had
        ({"shops": 5}, "shops: expected an array of tables ([[...]]), got 5"),
        ({"server": 5}, "server: expected a table, got 5"),
        ({"shops": [shop_table(hours="9-6")]}, "shops[0].hours: expected a table, got '9-6'"),
        ({"shops": [shop_table(owner="김")]}, "shops[0].owner: expected a table, got '김'"),
        (
            # the shop that uses it is not told the provider does not exist
            {"providers": {"twilio": 3}, "shops": [shop_table(delivery={"sms": "twilio"})]},
            "providers.twilio: expected a table, got 3",
        ),
        (
            # a misspelt key is not also "required but missing"
            {"shops": [{**without_slug, "slgu": "hanbit"}]},
            "shops[0].slgu: unknown key (did you mean 'slug'?)",
        ),
        (
            {"providers": {"solapi": {"api_kye": "k", "api_secret": "s", "sender": "02"}}},
            "providers.solapi.api_kye: unknown option (did you mean 'api_key'?)",
        ),
        (
            # a bad value does not fail the checks that compare it with another
            {"console": {"session_absolute_days": "x", "session_idle_minutes": 100_000}},
            "console.session_absolute_days: expected a whole number, got 'x'",
        ),
        (
            {"shops": [shop_table(closures=[{"start": "2026-12-29", "end": date(2026, 12, 1)}])]},
            "shops[0].closures[0].start: expected a date (YYYY-MM-DD), got '2026-12-29'",
        ),
        (
            {"shops": [shop_table(kakao={"bot_id": "b"})]},
            "shops[0].kakao.skill_secret_env: is required but missing",
        ),
        (
            # the two proxy settings of earlier releases became one (issue 12)
            {"server": {"trust_forwarded": True}},
            "server.trust_forwarded: replaced by [server] trust_proxy (one setting for "
            "everything behind the proxy)",
        ),
        (
            {"console": {"trust_proxy": False}},
            "console.trust_proxy: replaced by [server] trust_proxy (one setting for "
            "everything behind the proxy)",
        ),
    ],
)
def test_one_mistake_is_one_line(change: dict[str, Any], expected: str) -> None:
    data = settings_dict()
    data.update(change)
    assert error_of(data).splitlines() == [f"shop.toml: {expected}"]


def test_a_misspelt_day_is_one_line_with_its_hint() -> None:
    hours = {k: v for k, v in shop_table()["hours"].items() if k != "mon"}
    data = settings_dict(shops=[shop_table(hours={**hours, "mno": "09:00-18:00"})])
    assert error_of(data).splitlines() == [
        "shop.toml: shops[0].hours.mno: unknown key (did you mean 'mon'?)"
    ]


def test_a_shared_slug_is_named_with_the_mistakes_inside_the_shops() -> None:
    data = settings_dict(shops=[shop_table(name=""), shop_table(reply_target_minutes=0)])
    assert error_of(data).splitlines() == [
        "shop.toml: shops: every shop needs its own slug",
        "shop.toml: shops[0].name: must not be empty",
        "shop.toml: shops[1].reply_target_minutes: must be at least 1, got 0",
    ]


def test_an_unwritten_section_is_its_types_defaults() -> None:
    """Each default is written once, on the type: reading an empty section gives it."""
    settings = parse(settings_dict(), "shop.toml")
    assert settings.outbox == OutboxConfig()
    assert settings.console == ConsoleConfig()
    assert settings.logging == LoggingConfig()
    shop = settings.shops[0]
    assert (shop.reply_target_minutes, shop.sms_ack_delay_seconds) == (30, 90)
    assert shop.closed_on_public_holidays is True
    assert shop.delivery == Delivery()
    assert settings.source == "shop.toml"
