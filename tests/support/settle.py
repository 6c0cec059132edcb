"""Waiting for the app to finish what it started, instead of sleeping and polling."""

from __future__ import annotations

from aiohttp import web

from bot import keys


async def settled(app: web.Application) -> None:
    """Return once the app has nothing under way: work in the background (late messages,
    photo fetches), the ticks (the outbox sending what a commit woke it for) and the
    writer. Twice round, since each can hand the others work: a late message's commit
    wakes the dispatch tick, whose sends are written by the writer."""
    for _ in range(2):
        await app[keys.BACKGROUND].settled()
        await app[keys.DATABASE].writer.idle()
        if keys.TICKS in app:
            await app[keys.TICKS].idle()
        await app[keys.DATABASE].writer.idle()
