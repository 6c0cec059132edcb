"""A fake Kakao Event API (bot-api.kakao.com) on loopback, with the failure matrix on cue.

    fake = FakeKakaoEvent()
    server = await aiohttp_server(fake.app)
    provider = KakaoEventProvider({... "base_url": str(server.make_url(""))})

    fake.not_friend.add(KEY)             # accepted, then listed as failed in the task result
    fake.blocked.add(KEY)                # likewise ("blocked"); also bad_key, skill_error
    fake.refused.add(KEY)                # the whole request answers FAIL ("invalid user id")
    fake.hold_tasks = True               # tasks stay PENDING until fake.finish_tasks()
    fake.fail_next("429", retry_after=7) # also "500", "503", "malformed", "reset",
                                         # "timeout_before_record", "timeout_after_record"

"malformed", "reset" and "timeout_after_record" record the talk before misbehaving, like a
server that took it and then lost the answer; the others record nothing. A request that
breaks the rules (bad KakaoAK header → 401; wrong bot id or event name, > 100 users,
duplicate users, unknown key types → 200 with ``"status": "FAIL"``) is never recorded.

The task result follows the shape the adapter assumes (providers/kakao_event.py).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fakes import FailureScript

REST_API_KEY = "0123456789abcdef0123456789abcdef"
BOT_ID = "66a1e9d0e4b0a1b2c3d4e000"
EVENT_NAME = "owner_reply"
KEY_TYPES = ("botUserKey", "plusfriendUserKey", "appUserId")
MAX_USERS = 100


@dataclass
class FakeKakaoEvent(FailureScript):
    rest_api_key: str = REST_API_KEY
    bot_id: str = BOT_ID
    event_names: set[str] = field(default_factory=lambda: {EVENT_NAME})
    talks: dict[str, dict[str, Any]] = field(default_factory=dict)  # taskId -> accepted talk
    requests: list[dict[str, Any]] = field(default_factory=list)  # every authorised body
    fetches: list[str] = field(default_factory=list)  # taskIds asked about
    not_friend: set[str] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)
    bad_key: set[str] = field(default_factory=set)
    skill_error: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    hold_tasks: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._timestamps = itertools.count(1_795_000_000_000, 1000)
        self.app = web.Application()
        self.app.router.add_post("/v2/bots/{bot_id}/talk", self._talk)
        self.app.router.add_get("/v1/tasks/{task_id}", self._task)
        self.app.on_shutdown.append(self._on_shutdown)

    # -- the script

    def finish_tasks(self) -> None:
        self.hold_tasks = False
        for talk in self.talks.values():
            talk["done"] = True

    def sent_to(self, key: str) -> list[dict[str, Any]]:
        return [t for t in self.talks.values() if any(u["id"] == key for u in t["user"])]

    async def _on_shutdown(self, app: web.Application) -> None:
        self.release()

    # -- handlers

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return secrets.compare_digest(header, f"KakaoAK {self.rest_api_key}")

    def _answer(self, status: str, task_id: str = "", message: str = "") -> web.Response:
        body: dict[str, Any] = {"status": status, "message": message}
        if task_id:
            body["taskId"] = task_id
        body["timestamp"] = next(self._timestamps)
        return web.json_response(body)

    async def _talk(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"code": -401, "msg": "wrong appKey format"}, status=401)
        failure = self._next_failure()
        if failure and failure.kind == "timeout_before_record":
            await self._hang()
            return web.json_response({"message": "gateway timeout"}, status=504)
        try:
            body = await request.json()
        except ValueError:
            return self._answer("FAIL", message="Invalid JSON")
        if not isinstance(body, dict):
            return self._answer("FAIL", message="Invalid JSON")
        self.requests.append(body)
        if failure and failure.kind == "429":
            return web.json_response(
                {"status": "FAIL", "message": "Too many requests"},
                status=429,
                headers={"Retry-After": failure.retry_after},
            )
        if failure and failure.kind in ("500", "503"):
            return web.json_response(
                {"status": "FAIL", "message": "internal error"}, status=int(failure.kind)
            )
        problem = self._validate(request.match_info["bot_id"], body)
        if problem:
            return self._answer("FAIL", message=problem)
        task_id = str(uuid.uuid4())
        self.talks[task_id] = {
            "taskId": task_id,
            "event": body["event"],
            "user": body["user"],
            "params": body.get("params"),
            "done": not self.hold_tasks,
        }
        if failure and failure.kind == "timeout_after_record":
            await self._hang()
        elif failure and failure.kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing more to say on a dead connection
        elif failure and failure.kind == "malformed":
            return web.Response(text='{"taskId": "', content_type="application/json")
        return self._answer("SUCCESS", task_id)

    def _validate(self, bot_id: str, body: dict[str, Any]) -> str:
        if bot_id != self.bot_id:
            return "Invalid bot id"
        event = body.get("event")
        if not isinstance(event, dict) or event.get("name") not in self.event_names:
            return "event not found: check the event name of the block"
        if not isinstance(event.get("data", {}), dict):
            return "Invalid event data"
        users = body.get("user")
        if not isinstance(users, list) or not 1 <= len(users) <= MAX_USERS:
            return f"user must be a list of 1 to {MAX_USERS} users"
        seen: set[tuple[str, str]] = set()
        for user in users:
            if not isinstance(user, dict) or user.get("type") not in KEY_TYPES:
                return "Invalid user type"
            key = (str(user["type"]), str(user.get("id") or ""))
            if not key[1] or key[1] in self.refused:
                return f"Invalid user id: {key[1]}"
            if key in seen:
                return "Duplicated user"
            seen.add(key)
        if "params" in body and not isinstance(body["params"], dict):
            return "Invalid params"
        return ""

    async def _task(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"code": -401, "msg": "wrong appKey format"}, status=401)
        task_id = request.match_info["task_id"]
        self.fetches.append(task_id)
        talk = self.talks.get(task_id)
        if talk is None:
            return web.json_response({"status": "FAIL", "message": "task not found"}, status=404)
        users = talk["user"]
        if not talk["done"]:
            return web.json_response(
                {
                    "taskId": task_id,
                    "status": "PENDING",
                    "allRequestCount": len(users),
                    "successCount": 0,
                    "fail": {"count": 0, "list": []},
                }
            )
        failed = []
        for user in users:
            reason = self._reason(user["id"])
            if reason:
                failed.append({"type": user["type"], "id": user["id"], "reason": reason})
        ok = len(users) - len(failed)
        status = "ALL SUCCESS" if not failed else "ALL FAIL" if not ok else "PARTIAL SUCCESS"
        return web.json_response(
            {
                "taskId": task_id,
                "status": status,
                "allRequestCount": len(users),
                "successCount": ok,
                "fail": {"count": len(failed), "list": failed},
            }
        )

    def _reason(self, key: str) -> str:
        if key in self.not_friend:
            return "NOT_FRIEND: the user has not added the channel as a friend"
        if key in self.blocked:
            return "BLOCKED: the user blocked the channel"
        if key in self.bad_key:
            return "INVALID_USER_KEY"
        if key in self.skill_error:
            return "SKILL_ERROR: the block's skill failed"
        return ""
