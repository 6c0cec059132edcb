"""Handlers, one module per feature, in the order they are asked. First match answers."""

from bot.handlers import complaint, fallback, faq, handoff, optout
from bot.routing import Dispatcher

ROUTERS = (optout.router, faq.router, handoff.router, complaint.router)


def build_dispatcher() -> Dispatcher:
    return Dispatcher(ROUTERS, fallback.answer)
