"""The PostgreSQL yardstick: `floor.py schema` with plain asyncpg instead of sqlite3.

The same JSON parsed, the same four statements a group commit in dangol's own schema
(a schema dangol has migrated and filled, its customers known): the customers' open
conversations looked up, the messages stored with their idempotency keys, the
conversations updated, a fixed reply stored for each. Every request waiting shares one
transaction and waits for its COMMIT; then a fixed SkillResponse. No validation, routing,
ORM or rendering: what the database work alone costs on PostgreSQL, for dangol's
PostgreSQL row to be measured against (bench/run.py).

usage: floor_pg.py PORT POSTGRESQL_URL SCHEMA
"""

import asyncio
import json
import sys
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

ANSWER = json.dumps(
    {"version": "2.0", "template": {"outputs": [{"simpleText": {"text": "메시지 잘 받았어요."}}]}},
    ensure_ascii=False,
)
REPLY = "메시지 잘 받았어요."
REPLY_PAYLOAD = json.dumps({"handler": "fallback", "texts": [REPLY], "quick_replies": []})

Row = tuple[str, str]  # (user, utterance)
waiting: list[tuple[Row, asyncio.Future[None]]] = []
wake = asyncio.Event()
tasks: set[asyncio.Task[None]] = set()

STATE = """
SELECT i.value, i.customer_id, c.id FROM customer_identities i
JOIN conversations c ON c.customer_id = i.customer_id AND c.status != 'resolved'
WHERE i.shop_id = $1 AND i.kind = 'kakao_bot_user' AND i.value = ANY($2::text[])"""
# One statement for the whole batch, as floor.py's multi-row VALUES: unnest the columns.
INBOUND = """
INSERT INTO messages (shop_id, conversation_id, customer_id, direction, sender, channel,
    body, payload, status, idempotency_key, created_at)
SELECT $1, conv, cust, 'in', 'customer', 'kakao', body, '{}', 'received', key, $2
FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[]) AS t(conv, cust, body, key)
RETURNING id, idempotency_key"""
UPDATE = """
UPDATE conversations SET last_message_at = $1, unread_count = unread_count + 1,
    last_inbound_at = $1, last_inbound_message_id = $2, status = 'open' WHERE id = $3"""
REPLIES = """
INSERT INTO messages (shop_id, conversation_id, customer_id, direction, sender, channel,
    body, payload, status, path, in_reply_to_id, created_at, delivered_at)
VALUES ($1, $2, $3, 'out', 'bot', 'kakao', $4, $5, 'delivered', 'skill_response', $6, $7, $7)"""
serial = 0


async def store(conn: asyncpg.Connection, shop_id: int, rows: list[Row]) -> None:
    global serial
    now = datetime.now(UTC)
    users = sorted({user for user, _ in rows})
    found = {r[0]: (r[1], r[2]) for r in await conn.fetch(STATE, shop_id, users)}
    convs, custs, bodies, keys = [], [], [], []
    for user, text in rows:
        cust, conv = found[user]  # KeyError for an unknown customer: a 500
        serial += 1
        convs.append(conv)
        custs.append(cust)
        bodies.append(text)
        keys.append(f"kakao:{serial}:{now.isoformat()}")
    stored = {
        key: id_ for id_, key in await conn.fetch(INBOUND, shop_id, now, convs, custs, bodies, keys)
    }
    ids = [stored[key] for key in keys]
    await conn.executemany(UPDATE, [(now, id_, conv) for id_, conv in zip(ids, convs, strict=True)])
    replies = [
        (shop_id, conv, cust, REPLY, REPLY_PAYLOAD, id_, now)
        for conv, cust, id_ in zip(convs, custs, ids, strict=True)
    ]
    await conn.executemany(REPLIES, replies)


async def writer(conn: asyncpg.Connection, shop_id: int) -> None:
    while True:
        await wake.wait()
        wake.clear()
        batch = waiting[:]
        waiting.clear()
        try:
            async with conn.transaction():
                await store(conn, shop_id, [row for row, _ in batch])
        except Exception as exc:
            for _, done in batch:
                done.set_exception(exc)
            continue
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


async def start(app: web.Application) -> None:
    url = sys.argv[2].replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url, server_settings={"search_path": sys.argv[3]})
    shop_id = await conn.fetchval("SELECT id FROM shops WHERE slug = 'bench'")
    app[CONNECTION] = conn
    tasks.add(asyncio.create_task(writer(conn, shop_id)))


async def stop(app: web.Application) -> None:
    for task in tasks:
        task.cancel()
    await app[CONNECTION].close()


CONNECTION = web.AppKey("connection", asyncpg.Connection)
app = web.Application()
app.on_startup.append(start)
app.on_cleanup.append(stop)
app.router.add_post("/hooks/kakao/{shop}", skill)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
