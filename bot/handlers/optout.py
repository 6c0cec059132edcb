"""Opt-out first: "수신거부" must work whatever else the message says."""

from bot.routing import Context, Incoming, Reply, Router, exactly, keywords

router = Router("optout")

# Korean keywords match anywhere in the message; English ones only as the whole message,
# the way carriers treat STOP, so "stop by tomorrow?" is not an opt-out.
OPT_OUT = keywords("수신거부", "수신 거부", "광고거부", "광고 거부", "광고그만", "수신차단")
OPT_OUT_EN = exactly("stop", "stopall", "unsubscribe", "end", "quit", "cancel", "optout", "revoke")
OPT_IN = keywords("수신동의", "수신 동의", "광고동의")
OPT_IN_EN = exactly("start", "unstop")


@router.message(lambda m, c: OPT_OUT(m, c) or OPT_OUT_EN(m, c))
def opt_out(msg: Incoming, ctx: Context) -> Reply:
    ctx.effects.consent = ("marketing", False, f"keyword:{msg.text[:20]}")
    return ctx.reply("optout")


@router.message(lambda m, c: OPT_IN(m, c) or OPT_IN_EN(m, c))
def opt_in(msg: Incoming, ctx: Context) -> Reply:
    ctx.effects.consent = ("marketing", True, f"keyword:{msg.text[:20]}")
    return ctx.reply("optin")
