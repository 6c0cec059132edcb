"""Everything else goes to the owner, with an honest word on when they will answer."""

from bot.routing import Context, Incoming, Reply


def answer(msg: Incoming, ctx: Context) -> Reply:
    ctx.effects.wait_for_owner = True
    # The whole paragraph once per waiting period; after that a short confirmation.
    return ctx.reply("followup" if ctx.waiting else "ack")
