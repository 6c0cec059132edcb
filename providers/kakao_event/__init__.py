"""Kakao i Open Builder Event API (PROTOCOLS.md §1.7): the bot speaks first in the chat room.

``POST {base_url}/v2/bots/{bot_id}/talk`` with ``Authorization: KakaoAK {REST API key}`` and

    {"event": {"name": <event_name>, "data": {"text": …}},
     "user": [{"type": "botUserKey" | "plusfriendUserKey" | "appUserId", "id": …}, …],
     "params": {}}

The Event block in the admin center whose event name equals ``event_name`` prints
``event.data.text``. Messages of one `send()` with the same text share a request (≤ 100
users, never the same user twice in one request); others go one request each. The answer
``{"taskId", "status": "SUCCESS" | "FAIL", "message", "timestamp"}`` says *accepted*, not
delivered: per-user results come later from ``GET {base_url}/v1/tasks/{taskId}`` (`lookup`).

Every answer is mapped here, once:

    200 SUCCESS                       → SendResult("accepted", taskId, path "event_api")
    200/4xx FAIL, key / bot / event / wallet trouble
                                      → KakaoEventAccountError (an operator must fix it)
    200/4xx FAIL, anything else       → PermanentError; a shared request is first split
                                        into one request per user, so one bad key cannot
                                        take the other messages down with it
    401 / 403                         → KakaoEventAccountError, code "auth"
    429                               → RateLimited(retry_after = Retry-After)
    408, 500, 502, 503 …              → TransientError (Kakao's API answers an accepted
                                        talk with a taskId; an error page means none was made)
    504                               → UnknownOutcome (a gateway gave up waiting for a
                                        server that may have taken the talk)
    connection refused / connect timeout (nothing left)
                                      → TransientError
    timeout / reset after the request left, an unreadable 200
                                      → UnknownOutcome (reconcile, never blind-resend)

The task result's JSON shape is not in PROTOCOLS; we assume what public clients show —

    {"taskId": "…", "status": "ALL SUCCESS" | "PARTIAL SUCCESS" | "ALL FAIL" | "PENDING" …,
     "allRequestCount": 3, "successCount": 2,
     "fail": {"count": 1, "list": [{"type": "botUserKey", "id": "…", "reason": "…"}]}}

— and read it tolerantly in `read_task` alone: counts may be strings or missing, the failed
user's id may sit under ``id``/``userId``/``userID``/``user.id``, its reason under
``reason``/``errorMsg``/``message``/``error``. Anything we cannot read means "cannot tell".

Rate: Kakao publishes no limit for the Event API. `rate_per_second` (5 requests a second
per REST API key, a request carrying up to 100 users) is our conservative assumption.

User keys are personal data: logs show them through `mask_key` only, never bodies.

One job a module: `wire` (the request, every answer mapped), `tasks` (task results read),
`provider` (KakaoEventProvider).
"""

from providers.kakao_event.provider import DEFAULT_BASE_URL, MAX_USERS, KakaoEventProvider
from providers.kakao_event.tasks import TaskResult, failure_for_user, read_task
from providers.kakao_event.wire import (
    KakaoEventAccountError,
    classify_fail,
    error_for,
    mask_keys_in,
    read_talk_answer,
    talk_body,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_USERS",
    "KakaoEventAccountError",
    "KakaoEventProvider",
    "TaskResult",
    "classify_fail",
    "error_for",
    "failure_for_user",
    "mask_keys_in",
    "read_talk_answer",
    "read_task",
    "talk_body",
]
