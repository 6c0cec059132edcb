"""Kakao's AI-chatbot callback: the late answer to one skill request (PROTOCOLS §1.4).

When a block has Callback enabled, Kakao adds a one-time `callbackUrl` to the skill
request; a skill that cannot answer in time replies `useCallback` and later POSTs an
ordinary SkillResponse to that URL — once, within a minute. The URL is the address, so
it travels as `Recipient.kakao_callback_url`. Needs no credentials: the app always has
this provider.

Only `https://bot-api.kakao.com/…` is ever called, checked here again although the webhook
already refused other hosts: a forged payload must not turn us into a proxy to anywhere.
(`base_url` replaces that origin, as for every adapter, so tests can use a fake server.)

Kakao answers `{"taskId", "status": "SUCCESS" | "FAIL" | "ERROR", "message", "timestamp"}`.
FAIL covers an expired or used token, so it is final; and since the token is single-use,
anything after the request left is an unknown outcome, never a blind resend.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from providers.base import (
    Capability,
    Option,
    Outgoing,
    PermanentError,
    Provider,
    ProviderError,
    SendResult,
    TransientError,
    UnknownOutcome,
)

HOST = "bot-api.kakao.com"
MAX_BUBBLE = 1000  # simpleText
MAX_BUBBLES = 3  # outputs per SkillResponse


def is_kakao_callback_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and parts.hostname == HOST
        and port in (None, 443)
        and not parts.username
        and not parts.password
    )


def bubbles(text: str) -> list[str]:
    """At most three simpleText bubbles of at most 1000 characters, split at paragraphs."""
    out: list[str] = []
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        if out and len(out[-1]) + 2 + len(paragraph) <= MAX_BUBBLE:
            out[-1] += "\n\n" + paragraph
        else:
            out.append(paragraph)
    if len(out) > MAX_BUBBLES:
        out = [*out[: MAX_BUBBLES - 1], "\n\n".join(out[MAX_BUBBLES - 1 :])]
    return [b if len(b) <= MAX_BUBBLE else b[: MAX_BUBBLE - 1] + "…" for b in out]


def callback_body(text: str) -> dict[str, Any]:
    outputs = [{"simpleText": {"text": b}} for b in bubbles(text)]
    return {"version": "2.0", "template": {"outputs": outputs}}


class KakaoCallbackProvider(Provider):
    name: ClassVar[str] = "kakao_callback"
    capabilities: ClassVar[Capability] = Capability.INFO_ONLY
    max_text_chars: ClassVar[int] = MAX_BUBBLE * MAX_BUBBLES
    max_batch: ClassVar[int] = 20
    options_spec: ClassVar[Mapping[str, Option]] = {
        "timeout": Option(float, default=10.0, minimum=0.01, help="seconds per request"),
        # Where https://bot-api.kakao.com is reached: tests point it at a fake server.
        "base_url": Option(str, default=f"https://{HOST}", help="API root (tests: fake)"),
    }

    def __init__(
        self, options: Mapping[str, Any], session: aiohttp.ClientSession | None = None
    ) -> None:
        super().__init__(options, session)

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[SendResult | ProviderError]:
        return await asyncio.gather(*(self._send_one(msg) for msg in batch))

    async def _send_one(self, msg: Outgoing) -> SendResult | ProviderError:
        url = msg.recipient.kakao_callback_url
        if not url:
            return PermanentError("카카오 콜백 주소가 없어요", code="no_callback_url")
        if not is_kakao_callback_url(url):
            return PermanentError("카카오 콜백 주소가 아니에요", code="not_kakao")
        url = (
            self.options["base_url"].rstrip("/")
            + urlsplit(url)._replace(scheme="", netloc="").geturl()
        )
        timeout = aiohttp.ClientTimeout(total=self.options["timeout"])
        try:
            async with self.http().post(url, json=callback_body(msg.text), timeout=timeout) as resp:
                raw = await resp.read()
                status = resp.status
        except aiohttp.ClientConnectorError as exc:  # never connected: nothing was sent
            return TransientError(f"카카오에 연결하지 못했어요: {type(exc).__name__}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            return UnknownOutcome(f"카카오 콜백 응답을 받지 못했어요: {type(exc).__name__}")
        try:
            answer = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            answer = None
        if not isinstance(answer, dict):
            if status >= 500:
                return UnknownOutcome(f"카카오 콜백 HTTP {status}", code=str(status))
            return PermanentError(f"카카오 콜백 HTTP {status}", code=str(status))
        verdict = str(answer.get("status", "")).upper()
        task = answer.get("taskId")
        if status == 200 and verdict == "SUCCESS":  # Kakao shows it as the final bubble now
            return SendResult(msg.ref, str(task) if task else None, "delivered", "callback")
        reason = str(answer.get("message") or verdict or f"HTTP {status}")
        return PermanentError(f"카카오 콜백 실패: {reason}", code=verdict or str(status))
