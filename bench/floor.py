"""The second yardstick: the least a durable endpoint can do. It parses the same JSON,
stores the utterance as one row with the plain sqlite3 module, group-commits (every
request waiting shares one COMMIT, `synchronous=FULL`) and only then returns a fixed
SkillResponse: no customers, no conversations, no routing, no reply, no validation.

Between the bare handler and dangol it shows what durability itself costs here, and so
how much of dangol's gap is its own work per message.
usage: floor.py PORT DATABASE_FILE
"""

import asyncio
import json
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

ANSWER = json.dumps(
    {"version": "2.0", "template": {"outputs": [{"simpleText": {"text": "메시지 잘 받았어요."}}]}},
    ensure_ascii=False,
)

db = sqlite3.connect(sys.argv[2], isolation_level=None, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, user TEXT, body TEXT)")
disk = ThreadPoolExecutor(1)  # the commit waits on fsync: off the event loop
waiting: list[tuple[tuple[str, str], asyncio.Future[None]]] = []
wake = asyncio.Event()
tasks: set[asyncio.Task[None]] = set()


def commit(rows: list[tuple[str, str]]) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO messages (user, body) VALUES (?, ?)", rows)
    db.execute("COMMIT")


async def writer() -> None:
    loop = asyncio.get_running_loop()
    while True:
        await wake.wait()
        wake.clear()
        batch = waiting[:]
        waiting.clear()
        await loop.run_in_executor(disk, commit, [row for row, _ in batch])
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


async def start(_app: web.Application) -> None:
    tasks.add(asyncio.create_task(writer()))


app = web.Application()
app.on_startup.append(start)
app.router.add_post("/hooks/kakao/{shop}", skill)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
