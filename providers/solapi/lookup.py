"""Reconciling an unknown outcome with SOLAPI's message list (``GET /messages/v4/list``).

By message id when we have it, else by a creation-date window around the attempt, matched
on our id in ``customFields``; many refs share one read of the list (`lookup_many`). Only a
search read to its end answers "not there" — a failed one raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from providers.base import (
    LookupAnswer,
    ProviderError,
    SendRef,
    SendResult,
    TransientError,
    UnknownOutcome,
)
from providers.solapi.client import SolapiClient
from providers.solapi.signing import iso
from providers.solapi.wire import LIST_PATH, custom_ref, path_for_type


class SolapiLookup(SolapiClient):
    """`lookup` and `lookup_many` over SOLAPI's list."""

    # A lookup without a message id scans SOLAPI's list by creation date around the attempt.
    lookup_before = timedelta(minutes=5)  # clock skew between us and SOLAPI
    lookup_without_attempt = timedelta(hours=24)
    lookup_page_size = 500
    lookup_max_pages = 20  # more means too many messages in the window to search

    async def lookup(self, ref: SendRef) -> SendResult | None:
        """The message SOLAPI holds for `ref`; None only when SOLAPI was searched in full and
        has none. A failed search (an error, a timeout, more messages in the window than
        `lookup_max_pages` reads) raises: not finding is not "not sent", so ask again later.
        """
        if ref.provider_message_id:
            return await self._lookup_id(ref)
        answer = (await self._scan([ref], deadline=None))[ref.ref]  # no deadline: answered
        if isinstance(answer, ProviderError):
            raise answer
        return answer

    async def lookup_many(
        self, refs: Sequence[SendRef], *, seconds: float
    ) -> dict[str, LookupAnswer]:
        """Many refs for the price of one search: refs with a message id are asked by id (one
        request each), the others answered together by one read of SOLAPI's list over the
        union of their windows — each page once. A ref not found before `seconds` are up
        while the list was still being read is left out (ask again next round)."""
        deadline = asyncio.get_running_loop().time() + seconds
        by_id = [r for r in refs if r.provider_message_id]
        by_window = [r for r in refs if not r.provider_message_id]
        answers, scanned = await asyncio.gather(
            super().lookup_many(by_id, seconds=seconds), self._scan(by_window, deadline)
        )
        return answers | scanned

    async def _lookup_id(self, ref: SendRef) -> SendResult | None:
        assert ref.provider_message_id is not None
        criteria = {"criteria": "messageId", "cond": "eq", "value": ref.provider_message_id}
        for entry in await self._list_page(criteria, None):
            if str(entry.get("messageId")) == ref.provider_message_id:
                return self._found(ref.ref, entry)
        return None

    def _earliest(self, ref: SendRef, now: datetime) -> datetime:
        """The earliest SOLAPI can have created the message: just before the attempt (clock
        skew), or a day back when the attempt time is not known. (It may have been created
        any time up to now, so every window ends `lookup_before` after now.)"""
        if ref.attempted_at is not None:
            return ref.attempted_at - self.lookup_before
        return now - self.lookup_without_attempt

    async def _scan(
        self, refs: Sequence[SendRef], deadline: float | None
    ) -> dict[str, LookupAnswer]:
        """Read the list once over the union of the refs' windows (they all end now).

        A ref is answered when its message turns up; None when the list was read to its end
        without it; the error when the read failed or held more than `lookup_max_pages`.
        When `deadline` (loop time) comes first, the refs not found yet are left out.
        """
        if not refs:
            return {}
        now = self._clock()
        start = min(self._earliest(r, now) for r in refs)
        criteria = {
            "criteria": "dateCreated,dateCreated",
            "cond": "gte,lte",
            "value": f"{iso(start)},{iso(now + self.lookup_before)}",
        }
        wanted = {r.ref for r in refs}
        answers: dict[str, LookupAnswer] = {}
        key: str | None = None
        try:
            for _ in range(self.lookup_max_pages):
                async with asyncio.timeout_at(deadline):
                    page, key = await self._list(criteria, key)
                for entry in page:
                    ours = custom_ref(entry)
                    if ours not in wanted or ours in answers:
                        continue
                    # Refused at intake (None): a later entry may be the resend.
                    if (found := self._found(ours, entry)) is not None:
                        answers[ours] = found
                if not key:
                    return answers | dict.fromkeys(wanted - answers.keys())
        except TimeoutError:
            return answers  # out of time: what was found stands, the rest next round
        except ProviderError as exc:
            return answers | dict.fromkeys(wanted - answers.keys(), exc)
        too_full = TransientError(
            f"SOLAPI 목록에 메시지가 너무 많아 {self.lookup_max_pages}쪽 안에서 찾지 못했어요",
            code="lookup_window",
        )
        return answers | dict.fromkeys(wanted - answers.keys(), too_full)

    async def _list_page(
        self, criteria: Mapping[str, str], key: str | None
    ) -> list[Mapping[str, Any]]:
        return (await self._list(criteria, key))[0]

    async def _list(
        self, criteria: Mapping[str, str], key: str | None
    ) -> tuple[list[Mapping[str, Any]], str | None]:
        params = {**criteria, "limit": str(self.lookup_page_size)}
        if key:
            params["startKey"] = key
        answer = await self._request("GET", LIST_PATH, params=params)
        if not isinstance(answer, Mapping):
            raise UnknownOutcome("SOLAPI 목록 응답을 읽을 수 없어요", code="bad_answer")
        entries = answer.get("messageList") or []
        if isinstance(entries, Mapping):
            entries = list(entries.values())
        page = [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []
        next_key = answer.get("nextKey")
        return page, str(next_key) if next_key else None

    def _found(self, ref: str, entry: Mapping[str, Any]) -> SendResult | None:
        code = str(entry.get("statusCode", ""))
        if code.startswith("1"):  # refused at intake: nothing went out, a resend is safe
            return None
        mid = entry.get("messageId") or entry.get("_id")
        kind = entry.get("type")
        return SendResult(
            ref=ref,
            provider_message_id=str(mid) if mid else None,
            status="delivered" if code == "4000" else "accepted",
            path=path_for_type(str(kind) if kind else None),
            detail=str(entry.get("statusMessage") or ""),
        )
