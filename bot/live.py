"""Live updates for the owner console: a hub per process, fed after commit, fanned out per shop.

An event is a hint, not the data: `{"type": "message", "conversation_id": 12, …}` tells a
console *that* something changed; the console then fetches what it shows through the same
scoped, escaped pages as always. So an event can be lost, repeated or late without the
console ever showing something wrong — at worst it refreshes once more — and events carry
nothing a shop's console could not read anyway (a short preview of a new message at most).

How events travel:

- One path, the commit's: a unit that changes what a console shows registers it to follow
  its commit (`core.db.after_commit`), and the hub, listening to the database's commits,
  publishes it. A unit that rolls back, or whose group commit fails, publishes nothing.
  Units of `bot/` call `announce(shop_id, event)` (a `LiveEvent`); a unit that changes a
  message's delivery status — a vendor's report (`core.delivery`), the dispatcher recording
  a send (`scheduler/dispatch/records.py`), the delivery check, a customer's photos
  arriving — calls `core.delivery.status_changed`, which the hub turns into a
  `status_event` (core and the scheduler cannot import this module); a job's units
  (`core.jobs`) register `JobChanged`, which it turns into a `job_event`; a message stored
  outside `bot/` (a journey step) registers `core.new_messages.MessageAdded`, which becomes
  a `message_event`. `LiveHub.publish` is what all end in; nothing else calls it but tests.
- **SQLite** is one process (one writer owns the file), so the hub fans events out to its
  local subscribers.
- **PostgreSQL** may run any number of `dangol serve` processes. Each process's hub holds
  one dedicated asyncpg connection that LISTENs on the channel `dangol_events`, and sends
  what is published as NOTIFYs on it (batched); every process — the publisher included —
  relays what it hears to its own subscribers: one path, no special case for "local".
  Payloads carry a namespace (the configured schema), so two installs sharing one
  database never see each other's events.

Polling was the alternative (every console asking "anything new?" every second or two):
simpler, but a query per open console per second, and still a second late. LISTEN/NOTIFY
costs one idle connection per process. If that connection drops, the hub reconnects with
backoff, meanwhile delivers what it publishes locally (other processes miss those), and
afterwards tells every subscriber to `resync` (refetch), since NOTIFYs sent while it was
away are gone.

One module of ~430 lines, on purpose: the events, the subscriptions and the PostgreSQL
transport share the hub's state (its subscribers and its outgoing queue).

Subscriptions are bounded: a console that stops reading (a stalled phone connection) gets
its backlog replaced by a single `resync` rather than growing memory without limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa

from core.db import Database, after_commit
from core.delivery import StatusChanged
from core.jobs import JobChanged
from core.new_messages import MessageAdded

log = logging.getLogger(__name__)

Event = dict[str, Any]

CHANNEL = "dangol_events"
PREVIEW_MAX = 80  # characters of a new message shown in a browser notification
PAYLOAD_MAX = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes and more
QUEUE_SIZE = 100
SUBSCRIBERS_PER_SHOP = 50
HEARTBEAT_SECONDS = 15.0
PING_SECONDS = 30.0  # how often an idle LISTEN connection is checked
CONNECT_TIMEOUT = 10.0
RECONNECT_MAX = 30.0
SEND_BATCH = 100

RESYNC: Event = {"type": "resync"}


# --------------------------------------------------------------------------- events


@dataclass(slots=True)  # not frozen: one is made per Kakao message, and that costs 3×
class LiveEvent:
    """An event for a shop's consoles, registered to follow a unit's commit."""

    shop_id: int
    event: Event


def announce(shop_id: int, event: Event) -> None:
    """Inside a unit: the shop's consoles hear `event` once (and only if) the unit commits."""
    after_commit(LiveEvent(shop_id, event))


def message_event(
    conversation_id: int,
    message_id: int,
    *,
    direction: str,
    sender: str,
    customer_id: int | None = None,
    preview: str | None = None,
) -> Event:
    """A message was added to a conversation (a customer's, a reply, a note…)."""
    event: Event = {
        "type": "message",
        "conversation_id": conversation_id,
        "message_id": message_id,
        "direction": direction,
        "sender": sender,
    }
    if customer_id is not None:
        event["customer_id"] = customer_id
    if preview:
        event["preview"] = " ".join(preview.split())[:PREVIEW_MAX]
    return event


def status_event(message_id: int, status: str, conversation_id: int | None = None) -> Event:
    """An outbound message's delivery state changed (queued → sent → delivered, failed…)."""
    event: Event = {"type": "status", "message_id": message_id, "status": status}
    if conversation_id is not None:
        event["conversation_id"] = conversation_id
    return event


def conversation_event(conversation_id: int, change: str) -> Event:
    """A conversation changed: read, resolved, reopened, snoozed, its customer edited…"""
    return {"type": "conversation", "conversation_id": conversation_id, "change": change}


def owner_status_event(status: str) -> Event:
    return {"type": "owner_status", "status": status}


def job_event(job_id: int, change: str) -> Event:
    """A job was booked or changed (core.jobs.JobChanged): its page and the 작업 tab refresh."""
    return {"type": "job", "job_id": job_id, "change": change}


def _payload(namespace: str, shop_id: int, event: Event) -> str:
    text = json.dumps({"ns": namespace, "shop": shop_id, "event": event}, ensure_ascii=False)
    if len(text.encode()) > PAYLOAD_MAX and "preview" in event:
        return _payload(namespace, shop_id, {k: v for k, v in event.items() if k != "preview"})
    return text


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("live: the listener stopped", exc_info=task.exception())


# --------------------------------------------------------------------------- subscriptions


class Closed(Exception):
    """The subscription ended: the hub is shutting down."""


class TooManySubscribers(Exception):
    pass


class Subscription:
    """One console's stream of its shop's events; use it as a context manager."""

    def __init__(self, hub: LiveHub, shop_id: int, size: int, kind: str = "console") -> None:
        self.hub = hub
        self.shop_id = shop_id
        self.kind = kind
        self._size = size
        self._items: deque[Event] = deque()
        self._wake = asyncio.Event()
        self.closed = False

    def put(self, event: Event) -> None:
        if self.closed:
            return
        if len(self._items) >= self._size:
            # A reader this far behind has missed the point of each event: one resync
            # replaces the backlog, and memory stays bounded.
            self._items.clear()
            self._items.append(RESYNC)
        else:
            self._items.append(event)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self, within: float | None = None) -> Event | None:
        """The next event; None when `within` seconds pass first. Raises `Closed` at the end."""
        while not self._items:
            if self.closed:
                raise Closed
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), within)
            except TimeoutError:
                return None
        return self._items.popleft()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self.hub._forget(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            event = await self.next()
        except Closed:
            raise StopAsyncIteration from None
        assert event is not None
        return event


# --------------------------------------------------------------------------- the hub


class LiveHub:
    """Subscribe per shop; hears what units `announce` and the statuses they change once they
    commit, and `publish`es them."""

    def __init__(
        self,
        database: Database,
        *,
        namespace: str = "",
        queue_size: int = QUEUE_SIZE,
        subscribers_per_shop: int = SUBSCRIBERS_PER_SHOP,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.database = database
        self.namespace = namespace
        self.queue_size = queue_size
        self.subscribers_per_shop = subscribers_per_shop
        self.heartbeat = heartbeat  # seconds between SSE keep-alives (tests make it short)
        self.postgres = database.dialect == "postgresql"
        self._subscribers: dict[int, set[Subscription]] = {}
        self._counts: dict[tuple[int, str], int] = {}
        self._outgoing: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        self._closed = False
        self._stop_hearing: list[Callable[[], None]] = []

    # -- lifecycle

    async def start(self) -> None:
        """Hear what committed units announce and which statuses they changed; on
        PostgreSQL, start listening (in the background; it retries until it can)."""
        if not self._stop_hearing:
            self._stop_hearing = [
                self.database.listen(LiveEvent, self._committed),
                self.database.listen(StatusChanged, self._statuses_committed),
                self.database.listen(JobChanged, self._jobs_committed),
                self.database.listen(MessageAdded, self._messages_committed),
            ]
        if self.postgres and self._task is None:
            self._task = asyncio.create_task(self._run(), name="dangol-live-listener")
            self._task.add_done_callback(_log_failure)

    async def wait_listening(self, within: float = 10.0) -> None:
        """Until the LISTEN connection is up (PostgreSQL; tests and start-up checks)."""
        if self.postgres:
            await asyncio.wait_for(self._listening.wait(), within)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def end_streams(self) -> None:
        """End every subscription (at shutdown, so open event streams let the server stop)."""
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                sub.close()

    async def close(self) -> None:
        self._closed = True
        while self._stop_hearing:
            self._stop_hearing.pop()()
        self.end_streams()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- subscribing

    def subscribe(self, shop_id: int, *, kind: str = "console") -> Subscription:
        """A new subscription to the shop's events. Each `kind` of subscriber (the consoles,
        the simulator's long polls) has its own allowance per shop, so one cannot crowd out
        the other."""
        sub = Subscription(self, shop_id, self.queue_size, kind)
        if self._closed:
            sub.close()
            return sub
        taken = self._counts.get((shop_id, kind), 0)
        if taken >= self.subscribers_per_shop:
            raise TooManySubscribers(f"shop {shop_id} has {taken} {kind} streams open")
        self._subscribers.setdefault(shop_id, set()).add(sub)
        self._counts[shop_id, kind] = taken + 1
        return sub

    def _forget(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.shop_id)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subscribers[sub.shop_id]
        key = (sub.shop_id, sub.kind)
        self._counts[key] -= 1
        if not self._counts[key]:
            del self._counts[key]

    def subscribers(self, shop_id: int, kind: str = "console") -> int:
        return self._counts.get((shop_id, kind), 0)

    def _fan_out(self, shop_id: int, event: Event) -> None:
        for sub in list(self._subscribers.get(shop_id, ())):
            sub.put(event)

    def _fan_out_everywhere(self, event: Event) -> None:
        for shop_id in list(self._subscribers):
            self._fan_out(shop_id, event)

    # -- publishing

    def publish(self, shop_id: int, event: Event) -> None:
        """Publish a change that has already committed. Never blocks and never raises."""
        if self._closed:
            return
        if self.postgres and self.listening:
            self._outgoing.put_nowait(_payload(self.namespace, shop_id, event))
        else:
            self._fan_out(shop_id, event)

    def _committed(self, announced: list[LiveEvent]) -> None:
        for item in announced:
            self.publish(item.shop_id, item.event)

    def _statuses_committed(self, changed: list[StatusChanged]) -> None:
        """A message's delivery state was recorded, or something else about it (a customer's
        photos arrived): the consoles showing it refresh it."""
        for item in changed:
            self.publish(item.shop_id, status_event(item.message_id, item.status))

    def _jobs_committed(self, changed: list[JobChanged]) -> None:
        """A job was booked, moved or given a photo (core.jobs' units, from the console, the
        API or a customer's answer): the consoles showing it refresh it."""
        for item in changed:
            self.publish(item.shop_id, job_event(item.job_id, item.change))

    def _messages_committed(self, added: list[MessageAdded]) -> None:
        """A message stored by core or the scheduler (a journey step): the same event as
        a message the inbound path stores."""
        for m in added:
            event = message_event(
                m.conversation_id,
                m.message_id,
                direction=m.direction,
                sender=m.sender,
                customer_id=m.customer_id,
                preview=m.preview,
            )
            self.publish(m.shop_id, event)

    # -- PostgreSQL: one connection that listens, and sends what `publish` queued

    def _dsn(self) -> str:
        url = sa.make_url(self.database.url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def _run(self) -> None:
        delay = 0.5
        connected_before = False
        while True:
            try:
                conn = await asyncpg.connect(self._dsn(), timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("live: cannot connect to listen (%s); retrying", type(exc).__name__)
                self._deliver_queued_locally()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            try:
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self._conn = conn
                self._listening.set()
                delay = 0.5
                if connected_before:
                    self._fan_out_everywhere(RESYNC)  # NOTIFYs sent while away are gone
                connected_before = True
                await self._serve(conn, lost)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("live: lost the listening connection (%s)", type(exc).__name__)
            finally:
                self._listening.clear()
                self._conn = None
                conn.terminate()
            self._deliver_queued_locally()
            self._fan_out_everywhere(RESYNC)
            await asyncio.sleep(delay)

    async def _serve(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Send queued NOTIFYs; ping when idle; return when the connection is gone."""
        while not lost.is_set() and not conn.is_closed():
            getter = asyncio.ensure_future(self._outgoing.get())
            waiter = asyncio.ensure_future(lost.wait())
            try:
                done, _ = await asyncio.wait(
                    (getter, waiter), timeout=PING_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
                if not getter.done():
                    getter.cancel()
            if getter not in done:
                if not lost.is_set():
                    await conn.execute("SELECT 1")
                continue
            batch = [getter.result()]
            while len(batch) < SEND_BATCH and not self._outgoing.empty():
                batch.append(self._outgoing.get_nowait())
            try:
                await conn.execute(
                    "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                    CHANNEL,
                    batch,
                )
            except BaseException:
                for payload in batch:  # our own consoles at least
                    self._relay(payload)
                raise

    def _deliver_queued_locally(self) -> None:
        while not self._outgoing.empty():
            self._relay(self._outgoing.get_nowait())

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._relay(payload)

    def _relay(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            if data.get("ns") != self.namespace:
                return  # another install sharing this database
            shop_id, event = int(data["shop"]), data["event"]
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("live: ignored a malformed notification on %s", CHANNEL)
            return
        if isinstance(event, dict):
            self._fan_out(shop_id, event)
