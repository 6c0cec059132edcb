"""A talk's task result (``GET /v1/tasks/{taskId}``), read tolerantly in one place: its
JSON shape is not documented (see `providers.kakao_event`), so anything unreadable means
"cannot tell"."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from providers.base import PermanentError
from providers.kakao_event.wire import mask_keys_in


@dataclass(frozen=True)
class TaskResult:
    """What `read_task` could make of ``GET /v1/tasks/{taskId}``."""

    status: str  # upper case, blanks and dashes as "_": ALL_SUCCESS, PENDING …
    total: int | None
    succeeded: int | None
    failed_count: int | None
    failed: Mapping[str, str] = field(default_factory=dict)  # user key → reason

    @property
    def finished(self) -> bool:
        if self.status in _RUNNING:
            return False
        total, ok, failed = self.total, self.succeeded, self.failed_count
        if total is not None and ok is not None and failed is not None:
            return ok + failed >= total
        return self.status in _FINISHED

    @property
    def all_succeeded(self) -> bool:
        if self.total is not None and self.succeeded is not None:
            return self.total > 0 and self.succeeded >= self.total
        return self.status == "ALL_SUCCESS"

    @property
    def all_failed(self) -> bool:
        if self.total is not None and self.failed_count is not None:
            return self.total > 0 and self.failed_count >= self.total and not self.succeeded
        return self.status in ("ALL_FAIL", "FAIL", "FAILED")

    @property
    def failed_list_complete(self) -> bool:
        return self.failed_count is not None and len(self.failed) >= self.failed_count


_RUNNING = frozenset(
    {"PENDING", "READY", "WAITING", "QUEUED", "RUNNING", "PROCESSING", "IN_PROGRESS", "SENDING"}
)
_FINISHED = frozenset(
    {"ALL_SUCCESS", "PARTIAL_SUCCESS", "ALL_FAIL", "FAIL", "FAILED", "COMPLETE", "COMPLETED",
     "DONE", "FINISHED"}
)  # fmt: skip
_ID_KEYS = ("id", "userId", "userID", "user_id", "userKey", "botUserKey", "key")
_REASON_KEYS = ("reason", "errorMsg", "errorMessage", "message", "error", "code", "status")


def read_task(data: Any) -> TaskResult | None:
    """The task result in our words, or None when it is not one we can read.

    The assumed shape is in the module docstring; this is the only place that knows it.
    """
    if not isinstance(data, Mapping):
        return None

    def count(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return None

    def text_of(entry: Mapping[str, Any], keys: Sequence[str]) -> str:
        return next((str(entry[k]) for k in keys if entry.get(k) not in (None, "")), "")

    status = re.sub(r"[\s-]+", "_", str(data.get("status") or "").strip()).upper()
    fail = data.get("fail")
    fail = fail if isinstance(fail, Mapping) else {}
    entries = fail.get("list") if "list" in fail else data.get("failList")
    failed: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, str):
            failed[entry] = ""
            continue
        if not isinstance(entry, Mapping):
            continue
        user = entry.get("user")
        key = text_of(user, _ID_KEYS) if isinstance(user, Mapping) else text_of(entry, _ID_KEYS)
        if key:
            failed[key] = text_of(entry, _REASON_KEYS)
    total = count(data.get("allRequestCount", data.get("totalCount")))
    succeeded = count(data.get("successCount"))
    # No guessing "failed = total - succeeded": a running task has not failed anyone yet.
    failed_count = count(fail.get("count", data.get("failCount")))
    if not status and total is None and succeeded is None and not failed:
        return None
    return TaskResult(status, total, succeeded, failed_count, failed)


def failure_for_user(reason: str) -> PermanentError:
    """A user's failure in a task result, in words for the owner."""
    low = reason.lower()
    shown = mask_keys_in(reason.strip())[:200]
    suffix = f" ({shown})" if shown else ""
    if "friend" in low or "친구" in low:
        return PermanentError("채널을 친구 추가하지 않은 고객이에요" + suffix, code="not_friend")
    if "block" in low or "차단" in low:
        return PermanentError("채널을 차단한 고객이에요" + suffix, code="blocked")
    if "skill" in low or "스킬" in low:
        return PermanentError("이벤트 블록의 스킬 호출이 실패했어요" + suffix, code="skill_error")
    if any(w in low for w in ("key", "user", "invalid", "not found", "키")):
        return PermanentError("카카오 사용자 키가 맞지 않아요" + suffix, code="bad_user_key")
    return PermanentError("카카오 채널로 전달하지 못했어요" + suffix, code="undelivered")


def task_verdict(task: TaskResult, key: str | None) -> Literal["delivered"] | PermanentError | None:
    """Our message's fate in `task`; `key` is our user's key when this process knows it."""
    if key is not None and key in task.failed:
        return failure_for_user(task.failed[key])
    if task.all_failed:
        reasons = set(task.failed.values())
        return failure_for_user(reasons.pop() if len(reasons) == 1 else "")
    if task.all_succeeded:
        return "delivered"
    if task.total == 1 and task.failed:  # a one-user task: the failed user is ours
        return failure_for_user(next(iter(task.failed.values())))
    if key is not None and task.finished and task.failed_list_complete:
        return "delivered"
    return None  # still running, or ours is hidden in a mixed result
