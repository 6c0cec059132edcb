"""The yardstick: a bare aiohttp handler that parses the same JSON and returns a fixed
SkillResponse, with no database, no routing and no validation."""

import json
import sys

from aiohttp import web

ANSWER = json.dumps(
    {"version": "2.0", "template": {"outputs": [{"simpleText": {"text": "메시지 잘 받았어요."}}]}},
    ensure_ascii=False,
)


async def skill(request: web.Request) -> web.Response:
    body = await request.json()
    _ = body["userRequest"]["utterance"]
    return web.Response(text=ANSWER, content_type="application/json")


app = web.Application()
app.router.add_post("/hooks/kakao/{shop}", skill)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
