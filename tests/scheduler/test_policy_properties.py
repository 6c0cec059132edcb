"""The send-time policy over random cases (hypothesis): message kind × consent history ×
opt-out × complaint × purchases × time of day × urgency × the shop's courtesy hours.

Whatever the case: an advertising message is sent now exactly when every rule of
PROTOCOLS §4.1 allows it (never outside them, and never dropped when they allow it); an
informational one is never dropped; every hold names a later moment at which that wait is
over. The oracle below restates the rules independently of scheduler/policy.py: the latest
consent event wins, 6 calendar months by dateutil, the windows by plain comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from core.advertising import mark_advertising
from scheduler.policy import Drop, Hold, Outgoing, Recipient, SendNow, ShopRules, decide

KST = ZoneInfo("Asia/Seoul")
SHOP_NAME = "한빛설비"
SERVICES = ("aircon", "lawn")
START = datetime(2026, 1, 1, tzinfo=UTC)

TEXTS = st.one_of(
    st.builds(
        lambda body, line: mark_advertising(body, SHOP_NAME, line),
        st.sampled_from(["봄맞이 점검 10% 할인", "설 인사 드려요\n예약 02-1234-5678"]),
        st.sampled_from(["무료수신거부 080-123-4567", "무료거부 0801234567"]),
    ),
    st.sampled_from(
        [
            "[광고] 한빛설비 할인\n무료수신거부 080-123-4567",
            "(광고) 한빛설비 할인\n문의 02-1234-5678",
            "(광고) 할인\n무료수신거부 080-123-4567",  # no shop name
            " (광고) 한빛설비 할인\n무료거부 0801234567",
            "한빛설비 할인 안내",
            "",
        ]
    ),
)


@dataclass(frozen=True)
class Case:
    message: Outgoing
    history: tuple[tuple[str, bool], ...]  # consent events, oldest first: (scope, granted)
    complaint: bool
    purchases: dict[str, datetime]
    has_customer: bool
    shop: ShopRules
    now: datetime

    @property
    def recipient(self) -> Recipient | None:
        if not self.has_customer:
            return None
        latest: dict[str, bool] = {}
        for scope, granted in self.history:
            latest[scope] = granted
        return Recipient(
            marketing=latest.get("marketing"),
            night=latest.get("night"),
            complaint_open=self.complaint,
            purchases=self.purchases,
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    now = START + timedelta(minutes=draw(st.integers(0, 2 * 365 * 24 * 60)))
    kind = draw(st.sampled_from(["info", "ad"]))
    message = Outgoing(
        kind,
        urgent=draw(st.booleans()),
        text=draw(TEXTS),
        service=draw(st.sampled_from([*SERVICES, None])),
    )
    history = tuple(
        draw(
            st.lists(st.tuples(st.sampled_from(["marketing", "night"]), st.booleans()), max_size=5)
        )
    )
    purchases = {
        service: now - timedelta(hours=draw(st.integers(0, 400 * 24)))
        for service in draw(st.sets(st.sampled_from(SERVICES)))
    }
    opens = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
    closes = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
    zone = draw(st.sampled_from([KST, ZoneInfo("Asia/Tokyo"), ZoneInfo("UTC")]))
    return Case(
        message=message,
        history=history,
        complaint=draw(st.booleans()),
        purchases=purchases,
        has_customer=draw(st.booleans()),
        shop=ShopRules(zone, opens, closes, SHOP_NAME),
        now=now,
    )


def within(now: datetime, zone: ZoneInfo, opens: time, closes: time) -> bool:
    t = now.astimezone(zone).time()
    if opens == closes:
        return True
    if opens < closes:
        return opens <= t < closes
    return t >= opens or t < closes


def marked(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (
        text.startswith("(광고)")
        and bool(lines)
        and SHOP_NAME in lines[0]
        and ("무료수신거부" in lines[-1] or "무료거부" in lines[-1])
    )


def lawful_ad_now(case: Case) -> bool:
    """PROTOCOLS §4.1, restated: may this ad go to this person at this moment?"""
    to = case.recipient
    if to is None or to.marketing is False:
        return False
    service = case.message.service
    bought = service is not None and service in to.purchases
    recent = bought and case.now < (
        to.purchases[service].astimezone(case.shop.zone) + relativedelta(months=6)  # type: ignore[index]
    )
    if not (to.marketing or recent):
        return False
    if not marked(case.message.text) or to.complaint_open:
        return False
    courtesy = within(case.now, case.shop.zone, case.shop.courtesy_opens, case.shop.courtesy_closes)
    night_ok = to.night is True or within(case.now, case.shop.zone, time(8), time(21))
    return courtesy and night_ok


def can_never_go(case: Case) -> bool:
    """What no waiting can mend: no customer, an opt-out, no consent, no marking."""
    to = case.recipient
    if to is None or to.marketing is False or not marked(case.message.text):
        return True
    service = case.message.service
    recent = (
        service is not None
        and service in to.purchases
        and case.now < to.purchases[service].astimezone(case.shop.zone) + relativedelta(months=6)
    )
    return not (to.marketing or recent)


@settings(max_examples=400, deadline=None)
@given(cases())
def test_ads_go_exactly_when_the_law_allows_and_information_is_never_dropped(case: Case) -> None:
    decision = decide(case.message, case.recipient, case.shop, case.now)
    if case.message.kind == "ad":
        assert (decision == SendNow()) is lawful_ad_now(case)
        assert isinstance(decision, Drop) is can_never_go(case)
    else:
        assert not isinstance(decision, Drop)
        courtesy = within(
            case.now, case.shop.zone, case.shop.courtesy_opens, case.shop.courtesy_closes
        )
        assert (decision == SendNow()) is (case.message.urgent or courtesy)


@settings(max_examples=400, deadline=None)
@given(cases())
def test_a_hold_names_a_later_moment_when_its_wait_is_over(case: Case) -> None:
    decision = decide(case.message, case.recipient, case.shop, case.now)
    if not isinstance(decision, Hold):
        return
    assert case.now < decision.until <= case.now + timedelta(hours=24)
    assert decision.reason
    again = decide(case.message, case.recipient, case.shop, decision.until)
    if case.message.kind == "info":
        assert again == SendNow()  # only the hours held it
    elif not (case.recipient and case.recipient.complaint_open):
        # Held for the hours: at `until` the window that held it is open. Another (the
        # night ban after courtesy hours, or the other way round) may hold it again, later.
        assert not isinstance(again, Drop) or can_never_go(
            Case(**{**case.__dict__, "now": decision.until})
        )
        if isinstance(again, Hold):
            assert again.until > decision.until
