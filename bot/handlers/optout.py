"""Opt-out first: "수신거부" must work whatever else the message says."""

from collections.abc import Callable

from bot.routing import Context, Incoming, Reply, Router, exactly, keywords

router = Router("optout")

# Korean keywords match anywhere in the message; English ones only as the whole message,
# the way carriers treat STOP, so "stop by tomorrow?" is not an opt-out.
OPT_OUT = keywords("수신거부", "수신 거부", "광고거부", "광고 거부", "광고그만", "수신차단")
OPT_OUT_EN = exactly("stop", "stopall", "unsubscribe", "end", "quit", "cancel", "optout", "revoke")
OPT_IN = keywords("수신동의", "수신 동의", "광고동의")
OPT_IN_EN = exactly("start", "unstop")


def _provider_says(word: str) -> Callable[[Incoming, Context], bool]:
    """The SMS provider recognised an opt-out/opt-in keyword itself (Twilio's OptOutType,
    its own keyword list): the webhook passes that on in `extra["opt_out"]`."""
    return lambda m, c: m.channel == "sms" and m.extra.get("opt_out") == word


def _source(msg: Incoming) -> str:
    return (msg.extra.get("opt_out_source") if msg.channel == "sms" else None) or (
        f"keyword:{msg.text[:20]}"
    )


_STOP, _START = _provider_says("stop"), _provider_says("start")


@router.message(lambda m, c: OPT_OUT(m, c) or OPT_OUT_EN(m, c) or _STOP(m, c))
def opt_out(msg: Incoming, ctx: Context) -> Reply:
    ctx.effects.consent = ("marketing", False, _source(msg))
    return ctx.reply("optout")


@router.message(lambda m, c: OPT_IN(m, c) or OPT_IN_EN(m, c) or _START(m, c))
def opt_in(msg: Incoming, ctx: Context) -> Reply:
    ctx.effects.consent = ("marketing", True, _source(msg))
    return ctx.reply("optin")
