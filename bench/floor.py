"""The other yardsticks: the least a durable endpoint can do, with the plain sqlite3 module.

Both parse the same JSON, group-commit (every request waiting shares one COMMIT,
`synchronous=FULL`; the WAL checkpointed beside the writer as dangol does it,
core.checkpoints) and only then return a fixed SkillResponse. Neither validates,
routes, decides or renders anything.

- `rows`: the utterance stored as one row of a one-table database. It shows what
  durability itself costs here.
- `schema`: the rows every message needs in dangol's own schema (a database dangol has
  migrated and filled, its customers known): the customer's open conversation looked up,
  the message stored with its idempotency key, the conversation updated and a fixed
  reply stored — four statements a commit, in hand-written SQL. It shows what the
  database work alone costs with no ORM and no logic.

Between the bare handler and dangol they show how much of dangol's gap is durability,
how much the writes themselves, and how much dangol's own work per message.
usage: floor.py PORT DATABASE_FILE [rows|schema]
"""

import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.checkpoints import Checkpointer, no_autocheckpoint

ANSWER = json.dumps(
    {"version": "2.0", "template": {"outputs": [{"simpleText": {"text": "메시지 잘 받았어요."}}]}},
    ensure_ascii=False,
)
REPLY = "메시지 잘 받았어요."
REPLY_PAYLOAD = json.dumps({"handler": "fallback", "texts": [REPLY], "quick_replies": []})

db = sqlite3.connect(sys.argv[2], isolation_level=None, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("PRAGMA foreign_keys=ON")
no_autocheckpoint(db, None)
checkpoints = Checkpointer(sys.argv[2], "FULL")
disk = ThreadPoolExecutor(1)  # BEGIN may wait on the lock and COMMIT on fsync
Row = tuple[str, str]  # (user, utterance)
waiting: list[tuple[Row, asyncio.Future[None]]] = []
wake = asyncio.Event()
tasks: set[asyncio.Task[None]] = set()


def store_rows(rows: list[Row]) -> None:
    db.executemany("INSERT INTO messages (user, body) VALUES (?, ?)", rows)


STATE = """
SELECT i.value, i.customer_id, c.id FROM customer_identities i
JOIN conversations c ON c.customer_id = i.customer_id AND c.status != 'resolved'
WHERE i.shop_id = 1 AND i.kind = 'kakao_bot_user' AND i.value IN ({})"""
INBOUND = """
INSERT INTO messages (shop_id, conversation_id, customer_id, direction, sender, channel,
    body, payload, status, idempotency_key, created_at)
VALUES {} RETURNING id, idempotency_key"""
UPDATE = """
UPDATE conversations SET last_message_at = ?, unread_count = unread_count + 1,
    last_inbound_at = ?, last_inbound_message_id = ?, status = 'open' WHERE id = ?"""
REPLIES = """
INSERT INTO messages (shop_id, conversation_id, customer_id, direction, sender, channel,
    body, payload, status, path, in_reply_to_id, created_at, delivered_at)
VALUES (1, ?, ?, 'out', 'bot', 'kakao', ?, ?, 'delivered', 'skill_response', ?, ?, ?)"""
serial = 0


def store_on_schema(rows: list[Row]) -> None:
    global serial
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    users = sorted({user for user, _ in rows})
    marks = ",".join("?" * len(users))
    found = {user: (cust, conv) for user, cust, conv in db.execute(STATE.format(marks), users)}
    inbound: list[tuple[object, ...]] = []
    for user, text in rows:
        cust, conv = found[user]  # KeyError for an unknown customer: a 500
        serial += 1
        key = f"kakao:{serial}:{now}"
        inbound.append((1, conv, cust, "in", "customer", "kakao", text, "{}", "received", key, now))
    marks = ",".join(["(?,?,?,?,?,?,?,?,?,?,?)"] * len(inbound))
    values = [value for row in inbound for value in row]
    stored = {key: id_ for id_, key in db.execute(INBOUND.format(marks), values)}
    done = [(stored[row[9]], row) for row in inbound]  # (message id, its row)
    db.executemany(UPDATE, [(now, now, id_, row[1]) for id_, row in done])
    replies = [(row[1], row[2], REPLY, REPLY_PAYLOAD, id_, now, now) for id_, row in done]
    db.executemany(REPLIES, replies)


async def writer(store: Callable[[list[Row]], None]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await wake.wait()
        wake.clear()
        batch = waiting[:]
        waiting.clear()
        # As dangol's writer does: the statements on the event loop (in a thread, sqlite3
        # would trade the GIL back and forth on every row), BEGIN and COMMIT in the thread.
        await checkpoints.before_begin()
        await loop.run_in_executor(disk, db.execute, "BEGIN IMMEDIATE")
        try:
            store([row for row, _ in batch])
        except Exception as exc:
            db.execute("ROLLBACK")
            for _, done in batch:
                done.set_exception(exc)
            continue
        await loop.run_in_executor(disk, db.execute, "COMMIT")
        checkpoints.after_commit()
        for _, done in batch:
            done.set_result(None)


async def skill(request: web.Request) -> web.Response:
    body = await request.json()
    user = body["userRequest"]
    done = asyncio.get_running_loop().create_future()
    waiting.append(((user["user"]["id"], user["utterance"]), done))
    wake.set()
    await done
    return web.Response(text=ANSWER, content_type="application/json")


mode = sys.argv[3] if len(sys.argv) > 3 else "rows"
if mode == "rows":
    db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, user TEXT, body TEXT)")
store = {"rows": store_rows, "schema": store_on_schema}[mode]


async def start(_app: web.Application) -> None:
    tasks.add(asyncio.create_task(writer(store)))


app = web.Application()
app.on_startup.append(start)
app.router.add_post("/hooks/kakao/{shop}", skill)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
