"""Kakao i Open Builder skill wire format: parse a SkillPayload, build a SkillResponse.

Pure functions, no I/O. The parser is lenient about everything optional (real payloads carry
undocumented extras and odd types) and strict about the few fields we cannot work without.
The builders always return a response Kakao accepts, whatever text the caller hands them.
See PROTOCOLS.md §1.2 (request), §1.3 (response limits), §1.4 (callback).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_UTTERANCE = 4000
MAX_SIMPLE_TEXT = 1000  # simpleText.text limit (PROTOCOLS §1.3)
MAX_OUTPUTS = 3
MAX_QUICK_REPLIES = 10
MAX_QUICK_REPLY_LABEL = 14  # undocumented for quick replies; the card-button limit is 14
MAX_KEY_LENGTH = 200  # docs say user keys are ≤ 70; anything past 200 is not a Kakao key
ELLIPSIS = "…"
DEFAULT_TEXT = "메시지를 받았어요."

# C0 and C1 controls except \t and \n (\r is folded into \n first), DEL, and the bidi
# embedding/override/isolate controls that can make text read differently in the console.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029]")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ZWJ = "\u200d"
_CLUSTER_BACKOFF = 32  # longest emoji ZWJ/tag sequence is well under this


class PayloadError(ValueError):
    """A skill request we cannot use; the message is short, English and safe to log."""


@dataclass(frozen=True)
class SkillUser:
    bot_user_key: str
    plusfriend_user_key: str | None
    app_user_id: str | None
    is_friend: bool


@dataclass(frozen=True)
class SkillRequest:
    bot_id: str
    user: SkillUser
    utterance: str
    lang: str | None
    block_id: str | None
    block_name: str | None
    trigger: str | None
    client_extra: dict[str, str]
    params: dict[str, str]
    callback_url: str | None
    timezone: str | None


@dataclass(frozen=True)
class QuickReply:
    label: str
    message_text: str
    extra: dict[str, str] | None = None


# --- text hygiene -------------------------------------------------------------------------


def _strip_unsafe(text: str) -> str:
    """Drop lone surrogates (they cannot be encoded as UTF-8) and control characters."""
    text = _LONE_SURROGATE.sub("\ufffd", text)
    text = _NEWLINES.sub("\n", text)
    return _UNSAFE.sub("", text)


def _is_regional_indicator(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _continues_cluster(ch: str) -> bool:
    """True if `ch` attaches to the character before it (so a cut must not fall before it)."""
    if ch == _ZWJ or unicodedata.category(ch) in ("Mn", "Mc", "Me"):
        return True  # joiner, combining marks, variation selectors, keycap
    if "\U0001f3fb" <= ch <= "\U0001f3ff" or "\U000e0020" <= ch <= "\U000e007f":
        return True  # emoji skin-tone modifiers, emoji tag sequences (subdivision flags)
    # Hangul conjoining medial vowels and final consonants (archaic text that NFC leaves apart)
    return "\u1160" <= ch <= "\u11ff" or "\ud7b0" <= ch <= "\ud7ff"


def _splits_cluster(text: str, at: int) -> bool:
    """Would keeping text[:at] cut a user-perceived character in two?"""
    if at <= 0 or at >= len(text):
        return False
    before, after = text[at - 1], text[at]
    if before == _ZWJ or _continues_cluster(after):
        return True
    if _is_regional_indicator(before) and _is_regional_indicator(after):
        run = 0
        while at - 1 - run >= 0 and _is_regional_indicator(text[at - 1 - run]):
            run += 1
        return run % 2 == 1  # flags are pairs; an odd run means we are inside one
    return False


def cut(text: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """Shorten to at most `limit` characters, appending `ellipsis` when anything was cut.

    The cut backs off to a grapheme-ish boundary (ZWJ emoji, flags, combining marks) so the
    last visible character is never half an emoji; pathological input falls back to a plain
    code-point cut.
    """
    if len(text) <= limit:
        return text
    keep = max(limit - len(ellipsis), 0)
    at = keep
    while at > 0 and keep - at < _CLUSTER_BACKOFF and _splits_cluster(text, at):
        at -= 1
    if at == 0 or _splits_cluster(text, at):
        at = keep
    return text[:at].rstrip() + ellipsis


def _tidy(text: str) -> str:
    return unicodedata.normalize("NFC", _strip_unsafe(text)).strip()


def clean_text(text: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """Make untrusted text safe to store and show: controls out, newlines \\n, NFC, trimmed, capped.

    Emoji, ZWJ sequences and Hangul are kept. No HTML escaping — that happens at render time.
    """
    return cut(_tidy(text), limit, ellipsis)


# --- parsing ------------------------------------------------------------------------------


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_key(value: object) -> str | None:
    """An optional identifier: a plain, non-empty, reasonably short string, else absent."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY_LENGTH:
        return None
    return value if value.isprintable() else None


def _required_key(value: object, where: str) -> str:
    if value is None:
        raise PayloadError(f"{where} is missing")
    if not isinstance(value, str):
        raise PayloadError(f"{where} must be a string")
    if not value.strip():
        raise PayloadError(f"{where} is empty")
    if len(value) > MAX_KEY_LENGTH:
        raise PayloadError(f"{where} is too long")
    if not value.isprintable():  # keys are plain tokens; no newlines, controls or bidi tricks
        raise PayloadError(f"{where} contains unprintable characters")
    return value


def _stringify(value: object) -> str:
    if isinstance(value, str):
        return _strip_unsafe(value)
    # sys entities arrive as JSON text; render anything else the same way so json.loads works
    return _strip_unsafe(json.dumps(value, ensure_ascii=False))


def _string_map(value: object) -> dict[str, str]:
    """A map of strings from clientExtra/params; None values dropped, others stringified."""
    return {
        _strip_unsafe(str(k)): _stringify(v) for k, v in _object(value).items() if v is not None
    }


def decode_skill_request(body: bytes) -> SkillRequest:
    """Parse a request body as received; a body that is not a usable payload is a PayloadError.

    `json.loads` has two failures that are not JSONDecodeError: nesting deeper than the
    interpreter's stack ("[" × 50,000 raises RecursionError) and an integer past Python's
    4,300-digit limit (a plain ValueError). Both are the sender's fault, not a server error.
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None
    except ValueError:  # also UnicodeDecodeError and the integer digit limit
        raise PayloadError("malformed JSON") from None
    return parse_skill_request(data)


def parse_skill_request(data: object) -> SkillRequest:
    """Turn a decoded SkillPayload into a SkillRequest; raise PayloadError if unusable."""
    if not isinstance(data, dict):
        raise PayloadError("body must be a JSON object")
    user_request = data.get("userRequest")
    if user_request is None:
        raise PayloadError("userRequest is missing")
    if not isinstance(user_request, dict):
        raise PayloadError("userRequest must be an object")
    user = user_request.get("user")
    if user is None:
        raise PayloadError("userRequest.user is missing")
    if not isinstance(user, dict):
        raise PayloadError("userRequest.user must be an object")
    bot_user_key = _required_key(user.get("id"), "userRequest.user.id")
    utterance = user_request.get("utterance")
    if utterance is None:
        raise PayloadError("userRequest.utterance is missing")
    if not isinstance(utterance, str):
        raise PayloadError("userRequest.utterance must be a string")
    bot = data.get("bot")
    if bot is not None and not isinstance(bot, dict):
        raise PayloadError("bot must be an object")
    bot_id = _required_key(_object(bot).get("id"), "bot.id")

    properties = _object(user.get("properties"))
    plusfriend = _opt_key(properties.get("plusfriendUserKey")) or _opt_key(
        properties.get("plusfriend_user_key")
    )
    block = _object(user_request.get("block"))
    action = _object(data.get("action"))
    trigger = _object(_object(data.get("flow")).get("trigger"))
    return SkillRequest(
        bot_id=bot_id,
        user=SkillUser(
            bot_user_key=bot_user_key,
            plusfriend_user_key=plusfriend,
            app_user_id=_opt_key(properties.get("appUserId")),
            is_friend=properties.get("isFriend") is True,
        ),
        utterance=clean_text(utterance, MAX_UTTERANCE),
        lang=_opt_str(user_request.get("lang")),
        block_id=_opt_str(block.get("id")),
        block_name=_opt_str(block.get("name")),
        trigger=_opt_str(trigger.get("type")),
        client_extra=_string_map(action.get("clientExtra")),
        params=_string_map(action.get("params")),
        callback_url=_opt_str(user_request.get("callbackUrl")),
        timezone=_opt_str(user_request.get("timezone")),
    )


# --- building -----------------------------------------------------------------------------


def _outputs(texts: Sequence[str]) -> list[dict[str, Any]]:
    kept = [t for t in map(_tidy, texts) if t]
    if not kept:
        kept = [DEFAULT_TEXT]
    if len(kept) > MAX_OUTPUTS:
        kept = [*kept[: MAX_OUTPUTS - 1], "\n\n".join(kept[MAX_OUTPUTS - 1 :])]
    return [{"simpleText": {"text": cut(t, MAX_SIMPLE_TEXT)}} for t in kept]


def _safe_map(values: Mapping[str, str]) -> dict[str, str]:
    return {_strip_unsafe(str(k)): _strip_unsafe(str(v)) for k, v in values.items()}


def _quick_replies(replies: Sequence[QuickReply]) -> list[dict[str, Any]]:
    built: list[dict[str, Any]] = []
    seen: set[str] = set()
    for reply in replies:
        full_label = clean_text(reply.label, MAX_SIMPLE_TEXT, ellipsis="")
        label = cut(full_label, MAX_QUICK_REPLY_LABEL, ellipsis="")
        if not label or label in seen:
            continue
        seen.add(label)
        # a cut label still sends the whole text, so keyword handlers see what was meant
        message_text = clean_text(reply.message_text, MAX_SIMPLE_TEXT) or full_label
        item: dict[str, Any] = {"label": label, "action": "message", "messageText": message_text}
        if reply.extra:
            item["extra"] = _safe_map(reply.extra)
        built.append(item)
        if len(built) == MAX_QUICK_REPLIES:
            break
    return built


def skill_response(
    texts: Sequence[str],
    quick_replies: Sequence[QuickReply] = (),
    *,
    data: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A version 2.0 SkillResponse of simpleText bubbles, always within Kakao's limits.

    Blank texts are dropped (none left → a default acknowledgement); a fourth text onwards is
    joined into the third bubble; each bubble is capped at 1000 characters. Quick replies are
    deduplicated by label, labels capped at 14 characters, at most 10 kept.
    """
    if isinstance(texts, str):  # a lone str is a Sequence[str] of characters; not what we mean
        texts = [texts]
    template: dict[str, Any] = {"outputs": _outputs(texts)}
    replies = _quick_replies(quick_replies)
    if replies:
        template["quickReplies"] = replies
    response: dict[str, Any] = {"version": "2.0", "template": template}
    if data is not None:
        response["data"] = _safe_map(data)
    return response


def callback_ack(waiting_text: str) -> dict[str, Any]:
    """The immediate reply of a callback block; `data.text` is the waiting message (§1.4)."""
    text = clean_text(waiting_text, MAX_SIMPLE_TEXT) or DEFAULT_TEXT
    return {"version": "2.0", "useCallback": True, "data": {"text": text}}
