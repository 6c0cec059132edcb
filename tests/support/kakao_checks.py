"""A strict SkillResponse checker written from PROTOCOLS.md §1.3/§1.4, for any test to use.

    from support.kakao_checks import assert_valid_skill_response

It is stricter than Kakao on purpose (unknown keys, non-list arrays and non-str map keys are
rejected) so that our own builders cannot drift into shapes Kakao merely tolerates.
"""

from __future__ import annotations

import json
from typing import Any

COMPONENTS = frozenset(
    {
        "simpleText",
        "simpleImage",
        "textCard",
        "basicCard",
        "commerceCard",
        "listCard",
        "itemCard",
        "carousel",
    }
)
TOP_LEVEL_KEYS = frozenset({"version", "template", "context", "data", "useCallback"})
TEMPLATE_KEYS = frozenset({"outputs", "quickReplies"})
QUICK_REPLY_KEYS = frozenset({"label", "action", "messageText", "blockId", "extra"})
BUTTON_ACTIONS = {
    "webLink": "webLinkUrl",
    "message": "messageText",
    "phone": "phoneNumber",
    "block": "blockId",
    "share": None,
    "operator": None,
}
MAX_SIMPLE_TEXT = 1000
MAX_OUTPUTS = 3
MAX_QUICK_REPLIES = 10
MAX_LABEL = 14
MAX_BUTTONS = 3


_UNSET: Any = object()


def _fail(where: str, problem: str, value: object = _UNSET) -> None:
    shown = "" if value is _UNSET else f" (got {_preview(value)})"
    raise AssertionError(f"invalid SkillResponse at {where}: {problem}{shown}")


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check(condition: bool, where: str, problem: str, value: object = _UNSET) -> None:
    if not condition:
        _fail(where, problem, value)


def _check_text(value: object, where: str, limit: int, *, required: bool = True) -> None:
    if value is None:
        _check(not required, where, "is missing")
        return
    _check(isinstance(value, str), where, "must be a string", value)
    assert isinstance(value, str)
    _check(bool(value.strip()), where, "must not be empty or blank", value)
    _check(len(value) <= limit, where, f"is {len(value)} characters, limit is {limit}")


def _check_object(value: object, where: str) -> dict[str, Any]:
    _check(isinstance(value, dict), where, "must be an object", value)
    assert isinstance(value, dict)
    return value


def _check_string_map(value: object, where: str) -> None:
    mapping = _check_object(value, where)
    for key, item in mapping.items():
        _check(isinstance(item, str), f"{where}.{key}", "values must be strings", item)


def _walk_strings(value: object, where: str) -> None:
    """No NULs anywhere, only str keys (json.dumps would silently turn 1 into "1")."""
    if isinstance(value, str):
        _check("\x00" not in value, where, "contains a NUL character", value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(isinstance(key, str), where, "object keys must be strings", key)
            _walk_strings(key, f"{where} key")
            _walk_strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk_strings(item, f"{where}[{index}]")
    elif isinstance(value, float):
        _check(value == value and abs(value) != float("inf"), where, "NaN/Infinity", value)
    else:
        _check(
            value is None or isinstance(value, bool | int),
            where,
            "must be a JSON value (str, number, bool, null, list, object)",
            value,
        )


def _check_buttons(value: object, where: str) -> None:
    _check(isinstance(value, list), where, "must be a list", value)
    assert isinstance(value, list)
    _check(len(value) <= MAX_BUTTONS, where, f"has {len(value)} buttons, limit is {MAX_BUTTONS}")
    for index, raw in enumerate(value):
        at = f"{where}[{index}]"
        button = _check_object(raw, at)
        _check_text(button.get("label"), f"{at}.label", MAX_LABEL)
        action = button.get("action")
        _check(action in BUTTON_ACTIONS, f"{at}.action", "unknown button action", action)
        needed = BUTTON_ACTIONS[str(action)]
        if needed is not None:
            _check_text(button.get(needed), f"{at}.{needed}", MAX_SIMPLE_TEXT)


def _check_component(raw: object, where: str) -> None:
    component = _check_object(raw, where)
    keys = set(component)
    _check(
        len(keys) == 1 and keys <= COMPONENTS,
        where,
        f"must have exactly one of {sorted(COMPONENTS)}",
        sorted(keys),
    )
    (kind,) = keys
    body = _check_object(component[kind], f"{where}.{kind}")
    at = f"{where}.{kind}"
    if kind == "simpleText":
        _check_text(body.get("text"), f"{at}.text", MAX_SIMPLE_TEXT)
    elif kind == "simpleImage":
        _check_text(body.get("imageUrl"), f"{at}.imageUrl", 2000)
        _check_text(body.get("altText"), f"{at}.altText", 50, required=False)
    elif kind == "carousel":
        _check(
            body.get("type") in COMPONENTS - {"simpleText", "simpleImage", "carousel"},
            f"{at}.type",
            "unknown carousel item type",
            body.get("type"),
        )
        items = body.get("items")
        _check(isinstance(items, list) and 1 <= len(items) <= 10, f"{at}.items", "1-10 items")
    elif "buttons" in body:
        _check_buttons(body["buttons"], f"{at}.buttons")


def _check_quick_replies(value: object, where: str) -> None:
    _check(isinstance(value, list), where, "must be a list", value)
    assert isinstance(value, list)
    _check(
        len(value) <= MAX_QUICK_REPLIES,
        where,
        f"has {len(value)} quick replies, limit is {MAX_QUICK_REPLIES}",
    )
    for index, raw in enumerate(value):
        at = f"{where}[{index}]"
        reply = _check_object(raw, at)
        unknown = set(reply) - QUICK_REPLY_KEYS
        _check(not unknown, at, "unknown keys", sorted(unknown))
        _check_text(reply.get("label"), f"{at}.label", MAX_LABEL)
        action = reply.get("action")
        _check(action in ("message", "block"), f"{at}.action", "must be message or block", action)
        if action == "message":
            _check_text(reply.get("messageText"), f"{at}.messageText", MAX_SIMPLE_TEXT)
        else:
            _check_text(reply.get("blockId"), f"{at}.blockId", 200)
        if "extra" in reply:
            _check_object(reply["extra"], f"{at}.extra")


def _check_template(value: object) -> None:
    template = _check_object(value, "template")
    unknown = set(template) - TEMPLATE_KEYS
    _check(not unknown, "template", "unknown keys", sorted(unknown))
    outputs = template.get("outputs")
    _check(isinstance(outputs, list), "template.outputs", "must be a list", outputs)
    assert isinstance(outputs, list)
    _check(
        1 <= len(outputs) <= MAX_OUTPUTS,
        "template.outputs",
        f"has {len(outputs)} outputs, must be 1-{MAX_OUTPUTS}",
    )
    for index, component in enumerate(outputs):
        _check_component(component, f"template.outputs[{index}]")
    if "quickReplies" in template:
        _check_quick_replies(template["quickReplies"], "template.quickReplies")


def _check_context(value: object) -> None:
    context = _check_object(value, "context")
    values = context.get("values")
    _check(isinstance(values, list), "context.values", "must be a list", values)
    assert isinstance(values, list)
    for index, raw in enumerate(values):
        at = f"context.values[{index}]"
        entry = _check_object(raw, at)
        _check_text(entry.get("name"), f"{at}.name", 200)
        life_span = entry.get("lifeSpan")
        _check(
            isinstance(life_span, int) and not isinstance(life_span, bool) and life_span >= 0,
            f"{at}.lifeSpan",
            "must be a non-negative integer",
            life_span,
        )
        if "params" in entry:
            _check_string_map(entry["params"], f"{at}.params")


def assert_valid_skill_response(obj: object) -> None:
    """Raise AssertionError naming the first violation of the SkillResponse rules."""
    response = _check_object(obj, "<root>")
    _walk_strings(response, "<root>")
    try:
        json.dumps(response, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"invalid SkillResponse: not JSON-serialisable: {exc}") from exc
    unknown = set(response) - TOP_LEVEL_KEYS
    _check(not unknown, "<root>", "unknown top-level keys", sorted(unknown))
    _check(response.get("version") == "2.0", "version", 'must be "2.0"', response.get("version"))
    use_callback = response.get("useCallback", False)
    _check(isinstance(use_callback, bool), "useCallback", "must be a boolean", use_callback)
    if use_callback is not True or "template" in response:
        _check("template" in response, "template", "is required unless useCallback is true")
        _check_template(response["template"])
    if "context" in response:
        _check_context(response["context"])
    if "data" in response:
        _check_object(response["data"], "data")
