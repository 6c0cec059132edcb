"""Who is calling the jobs API, and how it answers when something is wrong.

Every request but the OpenAPI document needs `Authorization: Bearer <token>` with a token
of scope "api" that is not revoked; it reaches the token's shop and nothing else. Anything
wrong is answered in JSON — `{"error": code, "message": …}` — the router's own 404 and 405
included; the message is for a person (Korean, as the owner reads it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot import keys
from bot.api.models import ErrorOut, Problem
from core.api_tokens import verify
from core.config import ShopConfig

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPENAPI_PATH = "/api/openapi.json"
# A token's realm, as the 401 names it (RFC 6750).
CHALLENGE = 'Bearer realm="dangol"'


@dataclass(frozen=True, slots=True)
class Caller:
    """The shop a valid token reaches, and how its changes appear in the audit log."""

    token_id: int
    shop_id: int
    shop: ShopConfig

    @property
    def actor(self) -> str:
        return f"api_token:{self.token_id}"


CALLER = web.RequestKey("api_caller", Caller)


class ApiError(Exception):
    """An answer other than success: its status, code and message for the caller."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[Problem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def answer(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=model.model_dump_json(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error_response(error: ApiError) -> web.Response:
    body = ErrorOut(error=error.code, message=error.message, details=error.details)
    return answer(body, error.status, error.headers)


# What the router's and the server's own refusals say.
_HTTP_ERRORS = {
    404: ("not_found", "그런 주소가 없어요"),
    405: ("method_not_allowed", "이 주소는 그 요청 방식을 받지 않아요"),
    413: ("too_large", "요청 본문이 너무 커요"),
}


def caller_of(request: web.Request) -> Caller:
    return request[CALLER]


async def _authenticate(request: web.Request) -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    found = None
    if scheme.lower() == "bearer" and secret.strip():
        now = request.config_dict[keys.CLOCK].now()
        found = await verify(request.config_dict[keys.DATABASE], secret.strip(), "api", now)
    shop = None
    if found is not None:
        slugs = {shop_id: slug for slug, shop_id in request.config_dict[keys.SHOP_IDS].items()}
        slug = slugs.get(found.shop_id)
        shop = None if slug is None else request.config_dict[keys.SETTINGS].shop(slug)
    if found is None or shop is None:  # a token of a shop taken out of the config: no shop
        challenge = CHALLENGE + (', error="invalid_token"' if header else "")
        raise ApiError(
            401,
            "unauthorized",
            "API 토큰이 없거나 맞지 않아요. 'Authorization: Bearer <토큰>'으로 보내 주세요.",
            headers={"WWW-Authenticate": challenge},
        )
    return Caller(found.id, found.shop_id, shop)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The token first (unknown paths too: a stranger learns nothing), then the handler;
    every refusal as JSON."""
    try:
        if request.path != OPENAPI_PATH:
            request[CALLER] = await _authenticate(request)
        return await handler(request)
    except ApiError as exc:
        return _error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_ERRORS.get(exc.status, ("error", exc.reason))
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _error_response(ApiError(exc.status, code, message, headers=headers))


def invalid(exc: ValidationError) -> ApiError:
    """A 422 naming each field that is wrong (never echoing what was sent)."""
    details = [
        Problem(loc=[p for p in e["loc"] if isinstance(p, str | int)], msg=e["msg"], type=e["type"])
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return ApiError(422, "invalid", "입력값이 맞지 않아요", details=details)


async def body_of(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The request's JSON body as `model`: 400 when it is not JSON, 422 when it does not fit."""
    raw = await request.read()
    if optional and not raw.strip():
        return model()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ApiError(400, "invalid_json", "본문이 올바른 JSON이 아니에요") from None
        raise invalid(exc) from None
