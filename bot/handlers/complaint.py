"""Complaints: flag the conversation with a fix-within-24-hours deadline and tell the owner."""

from bot.routing import Context, Incoming, Reply, Router, keywords

router = Router("complaint")

COMPLAINT = keywords(
    "환불",
    "불만",
    "또고장",
    "다시고장",
    "또새",
    "또안돼",
    "또안되",
    "항의",
    "화가나",
    "짜증",
    "최악",
    "실망",
    "엉망",
    "하자",
    "재시공",
    "사기",
    "책임지",
    "보상",
)


@router.message(COMPLAINT)
def complaint(msg: Incoming, ctx: Context) -> Reply:
    ctx.effects.wait_for_owner = True
    ctx.effects.complaint = True
    return ctx.reply("complaint")
