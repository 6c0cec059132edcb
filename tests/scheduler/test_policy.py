"""The send-time policy, rule by rule (scheduler/policy.py): every row of PROTOCOLS.md §4.2
as dangol writes that message, and every rule of §4.1 the policy enforces — consent, the
existing-customer exception (its 6-month edge and "unless refused"), the night ban with and
without night consent, courtesy hours, opt-out, the complaint hold and the marking."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import make_settings, settings_dict, shop_table

from core.advertising import AdvertisingNotSetUp, ad_request, is_marked, mark_advertising
from core.config import ConfigErrors, parse
from core.jobs.steps import STEPS
from scheduler.policy import (
    AD_RULES,
    COMPLAINT_RECHECK,
    DEFAULT_RULES,
    Drop,
    Hold,
    Outgoing,
    Recipient,
    SendNow,
    ShopRules,
    add_months,
    decide,
    is_urgent,
    needs_recipient,
    outgoing,
    rules_for,
)

KST = ZoneInfo("Asia/Seoul")
SHOP = ShopRules(KST, name="한빛설비")
OPT_OUT = "무료수신거부 080-123-4567"
AD_TEXT = mark_advertising("봄맞이 에어컨 점검 10% 할인해 드려요", "한빛설비", OPT_OUT)


def kst(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=KST)


NOON = kst(23, 12)
CONSENTED = Recipient(marketing=True)
STRANGER = Recipient()  # never asked
OPTED_OUT = Recipient(marketing=False)


def ad(text: str = AD_TEXT, service: str | None = None) -> Outgoing:
    return Outgoing("ad", text=text, service=service)


def row(purpose: str, kind: str = "info", **payload: Any) -> Outgoing:
    """A message as the dispatcher sees an outbox row (`outgoing`)."""
    return outgoing(kind, purpose, {"text": AD_TEXT if kind == "ad" else "안내", **payload})


def held_until(decision: object) -> datetime:
    assert isinstance(decision, Hold), decision
    return decision.until


def dropped(decision: object) -> str:
    assert isinstance(decision, Drop), decision
    return decision.code


# --------------------------------------------------------------------------- PROTOCOLS §4.2


# (message, the outbox row dangol writes for it, informational?, urgent?)
SECTION_4_2: list[tuple[str, Outgoing, bool, bool]] = [
    ("booking confirmation", row("journey:confirmation"), True, True),
    ("visit schedule (day-before reminder)", row("journey:reminder"), True, False),
    ("technician ETA", row("journey:on_my_way"), True, True),
    ("progress photo", row("journey:photo"), True, True),
    ("completion notice", row("journey:completion"), True, True),
    ("invoice / receipt", row("receipt"), True, True),
    ("quote the customer asked for (the owner's reply)", row("reply"), True, True),
    ("aftercare tip for the job just done", row("journey:aftercare"), True, False),
    ("satisfaction survey", row("journey:survey"), True, False),
    ("satisfaction survey reminder", row("journey:survey_reminder"), True, False),
    ("review invitation without a coupon", row("journey:review"), True, False),
    ("survey with a coupon for our services", row("survey_coupon", "ad"), False, False),
    ("holiday greeting with a discount", row("greeting", "ad"), False, False),
    ("plain holiday greeting (conservative: an ad)", row("greeting", "ad"), False, False),
    ("'a year already — book your check'", row("inspection", "ad", service="aircon"), False, False),
    ("reply inside the customer's own chat", row("reply"), True, True),
]


@pytest.mark.parametrize(
    ("message", "informational", "urgent"),
    [(m, i, u) for _, m, i, u in SECTION_4_2],
    ids=[name for name, *_ in SECTION_4_2],
)
def test_section_4_2_informational_goes_without_consent_ads_need_it(
    message: Outgoing, informational: bool, urgent: bool
) -> None:
    assert message.kind == ("info" if informational else "ad")
    for to in (STRANGER, OPTED_OUT, None):
        at_noon = decide(message, to, SHOP, NOON)
        at_night = decide(message, to, SHOP, kst(23, 22, 30))
        if informational:  # never dropped for want of consent, nor for an opt-out
            assert at_noon == SendNow()
            if urgent:
                assert at_night == SendNow()
            else:  # waits for courtesy hours: 09:00 the next morning
                assert held_until(at_night) == kst(24, 9)
        else:
            assert isinstance(at_noon, Drop)
            assert isinstance(at_night, Drop)  # no waiting makes it lawful
    ad_or_info = decide(message, CONSENTED, SHOP, NOON)
    assert ad_or_info == SendNow()


def test_the_journey_catalogue_is_information_as_section_4_2_says() -> None:
    """Every step the journey sends is informational; urgent exactly as JOURNEY.md's table
    ("held for courtesy hours? no") says."""
    assert {s.name for s in STEPS.values() if s.kind != "info"} == set()
    urgent = {name for name in STEPS if is_urgent(f"journey:{name}")}
    assert urgent == {"confirmation", "on_my_way", "photo", "completion"}


# --------------------------------------------------------------------------- which message


@pytest.mark.parametrize(
    ("purpose", "urgent"),
    [
        ("reply", True),
        ("owner_notification", True),
        ("sms_ack", True),
        ("test", True),
        ("journey:confirmation", True),
        ("journey:on_my_way", True),
        ("journey:reminder", False),
        ("journey:aftercare", False),
        ("journey:survey", False),
        ("journey:unknown_step", False),  # not in the catalogue: waits, to be safe
        ("journey:", False),
    ],
)
def test_urgency_by_purpose(purpose: str, urgent: bool) -> None:
    assert is_urgent(purpose) is urgent
    assert outgoing("info", purpose, {"text": "x"}).urgent is urgent


def test_an_outbox_row_as_the_policy_sees_it() -> None:
    assert outgoing("ad", "campaign", {"text": "t", "service": "aircon"}) == Outgoing(
        "ad", urgent=True, text="t", service="aircon"
    )
    assert outgoing("ad", "campaign", {"text": "t"}).service is None
    assert outgoing("promo", "reply", {"text": "t"}).kind == "ad"  # unknown kind: ad rules
    assert outgoing("info", "reply", {}).text == ""
    assert needs_recipient(ad())
    assert not needs_recipient(row("journey:reminder"))


def test_urgency_never_lets_an_ad_skip_a_rule() -> None:
    urgent_ad = Outgoing("ad", urgent=True, text=AD_TEXT)
    assert dropped(decide(urgent_ad, STRANGER, SHOP, NOON)) == "no_consent"
    assert held_until(decide(urgent_ad, CONSENTED, SHOP, kst(23, 23))) == kst(24, 9)


# --------------------------------------------------------------------------- §4.1 opt-in


@pytest.mark.parametrize(
    ("to", "result"),
    [
        (CONSENTED, "send"),
        (STRANGER, "no_consent"),
        (OPTED_OUT, "opted_out"),
        (None, "no_customer"),
        (Recipient(marketing=None, night=True), "no_consent"),  # night consent alone is not it
    ],
    ids=["consented", "never-asked", "withdrawn", "no-customer", "night-only"],
)
def test_an_ad_needs_marketing_consent(to: Recipient | None, result: str) -> None:
    decision = decide(ad(), to, SHOP, NOON)
    assert (decision == SendNow()) if result == "send" else dropped(decision) == result


# --------------------------------------------------------------------------- §4.1 existing customer

DONE = kst(23, 10, month=5)  # an air-conditioner clean finished 23 May 2026, 10:00 KST


@pytest.mark.parametrize(
    ("now", "service", "result"),
    [
        (kst(23, 12, month=6), "aircon", "send"),  # a month later, same service
        (kst(23, 9, 59, 59), "aircon", "send"),  # 6 months less a second
        (kst(23, 10), "aircon", "no_consent"),  # 6 months to the second: over
        (kst(23, 12, month=6), "lawn", "no_consent"),  # another kind of service
        (kst(23, 12, month=6), None, "no_consent"),  # an ad about nothing in particular
    ],
    ids=["month-later", "edge-inside", "edge-over", "other-service", "no-service"],
)
def test_the_existing_customer_exception(now: datetime, service: str | None, result: str) -> None:
    buyer = Recipient(purchases={"aircon": DONE})
    rules = replace(SHOP, courtesy_opens=time(0), courtesy_closes=time(0))  # hours aside
    decision = decide(ad(service=service), replace(buyer, night=True), rules, now)
    assert (decision == SendNow()) if result == "send" else dropped(decision) == result


def test_the_exception_does_not_hold_once_the_customer_refused() -> None:
    refused = Recipient(marketing=False, purchases={"aircon": kst(20, 10)})
    assert dropped(decide(ad(service="aircon"), refused, SHOP, NOON)) == "opted_out"


def test_six_months_are_counted_on_the_shops_calendar() -> None:
    # 31 August → 28 February (no 31st). And the day is the local one: a job done 1 October
    # 00:30 KST (30 September in UTC) counts until 1 April 00:30 KST — in UTC it would end
    # a day early, 30 March 15:30 UTC.
    assert add_months(kst(31, 23, 30, month=8), 6) == datetime(2027, 2, 28, 23, 30, tzinfo=KST)
    done = kst(1, 0, 30, month=10).astimezone(UTC)  # as the database gives it
    buyer = Recipient(purchases={"aircon": done}, night=True)
    rules = replace(SHOP, courtesy_opens=time(0), courtesy_closes=time(0))
    last_day = datetime(2027, 3, 31, 12, tzinfo=KST)
    assert decide(ad(service="aircon"), buyer, rules, last_day) == SendNow()
    over = datetime(2027, 4, 1, 0, 30, tzinfo=KST)
    assert dropped(decide(ad(service="aircon"), buyer, rules, over)) == "no_consent"


# --------------------------------------------------------------------------- §4.1 night ban

# Courtesy hours wide enough to reach into the night, so the law's ban is what decides.
LATE_SHOP = replace(SHOP, courtesy_opens=time(6), courtesy_closes=time(23, 30))


@pytest.mark.parametrize(
    ("now", "night", "until"),
    [
        (kst(23, 20, 59), None, None),
        (kst(23, 21), None, kst(24, 8)),
        (kst(23, 21), False, kst(24, 8)),  # refused night consent: the same
        (kst(23, 21), True, None),  # separate night consent given
        (kst(23, 23, 29), True, None),
        (kst(24, 7, 59), None, kst(24, 8)),
        (kst(24, 6), True, None),
        (kst(24, 8), None, None),
    ],
)
def test_the_night_ban_needs_separate_consent(
    now: datetime, night: bool | None, until: datetime | None
) -> None:
    decision = decide(ad(), Recipient(marketing=True, night=night), LATE_SHOP, now)
    if until is None:
        assert decision == SendNow()
    else:
        assert held_until(decision) == until
        assert "야간" in decision.reason  # type: ignore[union-attr]


def test_night_consent_never_outruns_courtesy_hours() -> None:
    night_owl = Recipient(marketing=True, night=True)
    assert held_until(decide(ad(), night_owl, SHOP, kst(23, 22))) == kst(24, 9)


# --------------------------------------------------------------------------- courtesy hours


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (kst(23, 8, 59), kst(23, 9)),
        (kst(23, 9), None),
        (kst(23, 19, 59, 59), None),
        (kst(23, 20), kst(24, 9)),
        (kst(23, 23, 59), kst(24, 9)),
        (kst(24, 0, 0), kst(24, 9)),
    ],
)
@pytest.mark.parametrize("message", [row("journey:reminder"), ad()], ids=["info", "ad"])
def test_courtesy_hours(message: Outgoing, now: datetime, until: datetime | None) -> None:
    decision = decide(message, CONSENTED, SHOP, now)
    if until is None:
        assert decision == SendNow()
    else:
        assert held_until(decision) == until
        assert "09:00" in decision.reason  # type: ignore[union-attr]
    assert decide(row("journey:confirmation"), CONSENTED, SHOP, now) == SendNow()


def test_courtesy_hours_come_from_the_shops_config() -> None:
    settings = make_settings(
        shops=[
            shop_table(
                name="바른전기",
                timezone="Asia/Tokyo",
                journey={"courtesy_opens": "10:30", "courtesy_closes": "19:00"},
            )
        ]
    )
    rules = rules_for(settings.shops[0])
    assert rules == ShopRules(ZoneInfo("Asia/Tokyo"), time(10, 30), time(19), "바른전기")
    reminder = row("journey:reminder")
    tokyo_10 = datetime(2026, 11, 23, 10, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert held_until(decide(reminder, None, rules, tokyo_10)) == tokyo_10 + timedelta(minutes=30)
    assert decide(reminder, None, rules, tokyo_10 + timedelta(minutes=30)) == SendNow()
    assert ShopRules(KST) == DEFAULT_RULES


def test_courtesy_hours_across_midnight_and_all_day() -> None:
    night_shift = replace(SHOP, courtesy_opens=time(22), courtesy_closes=time(6))
    reminder = row("journey:reminder")
    assert decide(reminder, None, night_shift, kst(23, 23)) == SendNow()
    assert decide(reminder, None, night_shift, kst(24, 5, 59)) == SendNow()
    assert held_until(decide(reminder, None, night_shift, kst(24, 6))) == kst(24, 22)
    always = replace(SHOP, courtesy_opens=time(0), courtesy_closes=time(0))
    assert decide(reminder, None, always, kst(24, 3)) == SendNow()


# --------------------------------------------------------------------------- opt-out, complaint


def test_an_opt_out_drops_an_ad_at_once_whatever_else_is_true() -> None:
    everything_else = Recipient(
        marketing=False, night=True, purchases={"aircon": kst(20, 10)}, complaint_open=True
    )
    decision = decide(ad(service="aircon"), everything_else, SHOP, NOON)
    assert dropped(decision) == "opted_out"
    assert "거부" in decision.reason  # type: ignore[union-attr]


def test_an_open_complaint_holds_ads_not_information() -> None:
    upset = Recipient(marketing=True, complaint_open=True)
    decision = decide(ad(), upset, SHOP, NOON)
    assert held_until(decision) == NOON + COMPLAINT_RECHECK
    assert "불만" in decision.reason  # type: ignore[union-attr]
    assert decide(row("journey:survey"), upset, SHOP, NOON) == SendNow()
    assert decide(row("reply"), upset, SHOP, kst(23, 23)) == SendNow()


# --------------------------------------------------------------------------- marking

BAD_MARKINGS = {
    "no-mark": "한빛설비 봄맞이 점검 할인\n무료수신거부 080-123-4567",
    "square-brackets": "[광고] 한빛설비 봄맞이 점검 할인\n무료수신거부 080-123-4567",
    "spaced": "(광 고) 한빛설비 봄맞이 점검 할인\n무료수신거부 080-123-4567",
    "full-width": "（광고） 한빛설비 봄맞이 점검 할인\n무료수신거부 080-123-4567",
    "leading-space": " (광고) 한빛설비 봄맞이 점검 할인\n무료수신거부 080-123-4567",
    "mark-not-first": "한빛설비 (광고) 봄맞이 점검 할인\n무료수신거부 080-123-4567",
    "no-opt-out": "(광고) 한빛설비 봄맞이 점검 할인\n문의 02-1234-5678",
    "paid-opt-out": "(광고) 한빛설비 봄맞이 점검 할인\n수신거부 02-1234-5678",
    "opt-out-not-last": "(광고) 한빛설비\n무료수신거부 080-123-4567\n문의 02-1234-5678",
    "no-shop-name": "(광고) 봄맞이 점검 할인\n무료수신거부 080-123-4567",
    "empty": "",
}


@pytest.mark.parametrize("text", list(BAD_MARKINGS.values()), ids=list(BAD_MARKINGS))
def test_an_unmarked_ad_is_dropped_even_at_night(text: str) -> None:
    assert not is_marked(text, "한빛설비")
    for now in (NOON, kst(23, 23, 30)):
        decision = decide(ad(text), CONSENTED, SHOP, now)
        assert dropped(decision) == "unmarked"
        assert "(광고)" in decision.reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    [
        "(광고) 한빛설비 봄맞이 점검 10% 할인\n예약: 02-1234-5678\n무료수신거부 080-123-4567",
        "(광고)한빛설비 점검 할인\n무료거부 0801234567",
        "(광고)[한빛설비] 할인\n\n  무료수신거부 080-123-4567  \n",
    ],
)
def test_a_marked_ad_passes(text: str) -> None:
    assert is_marked(text, "한빛설비")
    assert decide(ad(text), CONSENTED, SHOP, NOON) == SendNow()


def test_mark_advertising_writes_the_marking_once() -> None:
    assert AD_TEXT == "(광고)[한빛설비] 봄맞이 에어컨 점검 10% 할인해 드려요\n" + OPT_OUT
    assert mark_advertising(AD_TEXT, "한빛설비", OPT_OUT) == AD_TEXT
    two_lines = mark_advertising("첫 줄\n둘째 줄\n무료거부 0800000000", "한빛설비", OPT_OUT)
    assert two_lines == f"(광고)[한빛설비] 첫 줄\n둘째 줄\n{OPT_OUT}"
    assert is_marked(two_lines, "한빛설비")


def test_the_rules_are_asked_in_one_order() -> None:
    """Drops first — waiting never makes an unlawful ad lawful — then what only waits."""
    names = [rule.__name__ for rule in AD_RULES]
    assert names == [
        "_no_customer",
        "_opted_out",
        "_no_consent",
        "_unmarked",
        "_complaint",
        "_courtesy",
        "_night",
    ]
    unmarked_upset_at_night = Recipient(marketing=True, complaint_open=True)
    assert dropped(decide(ad("광고"), unmarked_upset_at_night, SHOP, kst(23, 23))) == "unmarked"
    assert dropped(decide(ad("광고"), OPTED_OUT, SHOP, NOON)) == "opted_out"


# --------------------------------------------------------------------------- enqueueing an ad


def _shop(**advertising: str) -> Any:
    table = shop_table(advertising=advertising) if advertising else shop_table()
    return make_settings(shops=[table]).shops[0]


def test_ad_request_builds_a_marked_ad_row() -> None:
    shop = _shop(opt_out_line=OPT_OUT)
    request = ad_request(
        shop,
        shop_id=1,
        customer_id=7,
        purpose="campaign",
        provider="solapi",
        recipient={"phone": "+821022223333"},
        text="봄맞이 에어컨 점검 10% 할인해 드려요",
        idempotency_key="campaign:1:customer:7",
        now=NOON,
        service="aircon",
        payload={"subject": "봄맞이 점검"},
    )
    assert (request.kind, request.customer_id) == ("ad", 7)
    assert request.payload == {"subject": "봄맞이 점검", "text": AD_TEXT, "service": "aircon"}
    message = outgoing(request.kind, request.purpose, request.payload)
    assert decide(message, Recipient(purchases={"aircon": kst(1, 10)}), rules_for(shop), NOON) == (
        SendNow()
    )


def test_a_shop_without_an_opt_out_line_cannot_enqueue_ads() -> None:
    with pytest.raises(AdvertisingNotSetUp, match=r"\[shops.advertising\]"):
        ad_request(
            _shop(),
            shop_id=1,
            customer_id=7,
            purpose="campaign",
            provider="solapi",
            recipient={"phone": "+821022223333"},
            text="할인",
            idempotency_key="k",
            now=NOON,
        )


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("무료수신거부 080-000-0000", True),
        ("무료거부 0800000000", True),
        ("수신거부 02-123-4567", False),  # not free
        ("080-000-0000", False),
        ("무료수신거부\n080-000-0000", False),  # must be one line
        ("", False),
    ],
)
def test_the_opt_out_line_must_name_a_free_opt_out(line: str, ok: bool) -> None:
    data = settings_dict(shops=[shop_table(advertising={"opt_out_line": line})])
    if ok:
        advertising = parse(data, "t.toml").shops[0].advertising
        assert advertising is not None
        assert advertising.opt_out_line == line
        return
    with pytest.raises(ConfigErrors, match=r"shops\[0\]\.advertising\.opt_out_line"):
        parse(data, "t.toml")
