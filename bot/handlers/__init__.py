"""Handlers, one module per feature, in the order they are asked. First match answers."""

from bot.handlers import complaint, fallback, faq, handoff, optout
from bot.routing import Switchboard

ROUTERS = (optout.router, faq.router, handoff.router, complaint.router)


def build_switchboard() -> Switchboard:
    return Switchboard(ROUTERS, fallback.answer)
