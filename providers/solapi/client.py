"""The HTTP side of the SOLAPI adapter: one signed call, and what its answer means.

Error classification of a whole call (`SolapiProvider._request`):

=========================================  ===================  =========================
what happened                               error                why
=========================================  ===================  =========================
connect refused / DNS / connect timeout     TransientError       the request never left
timeout after connecting                    UnknownOutcome       SOLAPI may have taken it
disconnect/reset after connecting           UnknownOutcome       cannot tell whether it
                                                                 was read: look up first
HTTP 200 with unreadable JSON               UnknownOutcome       accepted, answer garbled
HTTP 403 RequestTimeTooSkewed,              TransientError       fresh date/salt next time
         DuplicatedSignature
HTTP 403 InvalidAPIKey,                     PermanentError       fix the credentials
         SignatureDoesNotMatch, other
HTTP 429                                    RateLimited          Retry-After honoured
HTTP 408                                    TransientError       request not read in full
other 4xx                                   PermanentError       the request is wrong
HTTP 5xx                                    UnknownOutcome       no idempotency key
=========================================  ===================  =========================

An image upload (``/storage/v1/files``) is classified the same way, except that what would
be an UnknownOutcome is a TransientError: nothing has gone to the customer yet, and an
upload that did arrive only leaves an unused file at SOLAPI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp

from providers.base import (
    PermanentError,
    Provider,
    ProviderConfigError,
    RateLimited,
    TransientError,
    UnknownOutcome,
    parse_retry_after,
)
from providers.solapi.codes import SolapiAccountError
from providers.solapi.signing import auth_header, default_salt, iso, utc_now

DEFAULT_BASE_URL = "https://api.solapi.com"
RETRYABLE_AUTH = frozenset({"RequestTimeTooSkewed", "DuplicatedSignature"})


class SolapiClient(Provider):
    """Credentials, sender and the signed request; `SolapiProvider` adds what is sent."""

    def __init__(
        self,
        options: Mapping[str, Any],
        session: aiohttp.ClientSession | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        salt: Callable[[], str] = default_salt,
    ) -> None:
        super().__init__(options, session)
        sender = re.sub(r"[\s-]", "", str(self.options["sender"]))
        if not sender.isdigit() or not 8 <= len(sender) <= 11:
            raise ProviderConfigError(
                "providers.solapi.sender: expected the registered number, 8–11 digits"
            )
        self.sender = sender
        self.base_url = str(self.options["base_url"]).rstrip("/")
        self._clock = clock
        self._salt = salt

    # -- lifecycle

    async def start(self) -> None:
        self.http()

    # -- auth

    def authorization(self) -> str:
        """A fresh Authorization header: new date and salt on every call."""
        date = iso(self._clock())
        return auth_header(self.options["api_key"], self.options["api_secret"], date, self._salt())

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One signed call; the decoded JSON of a 200, else the classified error."""
        seconds = float(self.options["timeout"])
        timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=min(seconds, 5.0))
        headers = {"Authorization": self.authorization()}
        try:
            async with self.http().request(
                method,
                self.base_url + path,
                json=json_body,
                params=params,
                headers=headers,
                timeout=timeout,
            ) as resp:
                status = resp.status
                raw = await resp.read()
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise TransientError(f"SOLAPI에 연결할 수 없어요 ({type(exc).__name__})") from None
        except TimeoutError:
            raise UnknownOutcome(f"SOLAPI 응답 시간 초과 ({seconds:g}초)", code="timeout") from None
        except aiohttp.ClientError as exc:
            raise UnknownOutcome(
                f"SOLAPI 연결이 끊겼어요 ({type(exc).__name__})", code="disconnected"
            ) from None
        if status == 200:
            try:
                return json.loads(raw)
            except ValueError:
                raise UnknownOutcome(
                    "SOLAPI가 읽을 수 없는 응답을 보냈어요", code="bad_json"
                ) from None
        code, message = _error_body(raw)
        if status == 429:
            raise RateLimited(
                "SOLAPI 요청 한도 초과",
                retry_after=parse_retry_after(retry_after, self._clock()),
                code=code or "429",
            )
        if status == 403:
            reason = f"SOLAPI 인증 실패: {message or code}"
            if code in RETRYABLE_AUTH:
                raise TransientError(reason, code=code)
            raise SolapiAccountError(reason, code=code or "403")
        if status == 408:
            raise TransientError("SOLAPI 요청 시간 초과", code="408")
        if 400 <= status < 500:
            raise PermanentError(f"SOLAPI가 요청을 거부했어요: {message or code}", code=code)
        raise UnknownOutcome(f"SOLAPI 서버 오류 (HTTP {status})", code=f"http_{status}")


def _error_body(raw: bytes) -> tuple[str | None, str]:
    try:
        data = json.loads(raw)
    except ValueError:
        return None, ""
    if not isinstance(data, Mapping):
        return None, ""
    code = data.get("errorCode")
    return (str(code) if code else None), str(data.get("errorMessage") or "")
