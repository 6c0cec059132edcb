"""Self-service answers: hours, location and the shop's own FAQ, by quick reply or keyword."""

from bot.routing import Context, Incoming, Reply, Router, any_of, extra, keywords
from core.config import FaqEntry

router = Router("faq")


@router.message(
    any_of(
        extra("faq", "hours"),
        keywords("영업시간", "몇시까지", "몇시에", "언제열", "쉬는날", "휴무"),
    )
)
def hours(msg: Incoming, ctx: Context) -> Reply:
    return ctx.reply("hours")


@router.message(any_of(extra("faq", "location"), keywords("위치", "주소", "어디에있", "찾아가")))
def location(msg: Incoming, ctx: Context) -> Reply:
    return ctx.reply("location")


def _entry_for(msg: Incoming, ctx: Context) -> FaqEntry | None:
    wanted = msg.extra.get("faq")
    for entry in ctx.shop.faq:
        if entry.id == wanted or msg.folded == entry.label.replace(" ", "").casefold():
            return entry
        if any(k.replace(" ", "").casefold() in msg.folded for k in entry.keywords):
            return entry
    return None


@router.message(lambda msg, ctx: _entry_for(msg, ctx) is not None)
def shop_faq(msg: Incoming, ctx: Context) -> Reply:
    entry = _entry_for(msg, ctx)
    assert entry is not None
    base = ctx.reply()
    return Reply((entry.answer,), base.quick_replies, f"faq.{entry.id}")
