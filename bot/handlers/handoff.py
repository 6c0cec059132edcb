"""The customer asks for a person: tell the owner now and say honestly when they will answer."""

from bot.routing import Context, Incoming, Reply, Router, any_of, extra, keywords

router = Router("handoff")


@router.message(
    any_of(
        extra("action", "handoff"),
        keywords("상담원", "사장님연결", "사람이랑", "직접통화", "전화주세요", "전화부탁"),
    )
)
def handoff(msg: Incoming, ctx: Context) -> Reply:
    ctx.effects.wait_for_owner = True
    ctx.effects.handoff = True
    return ctx.reply("handoff")
