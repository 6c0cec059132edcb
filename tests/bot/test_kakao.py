"""The Kakao skill wire format: lenient parsing, safe text, responses that always validate."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from support.kakao_checks import assert_valid_skill_response

from bot.kakao import (
    DEFAULT_TEXT,
    PayloadError,
    QuickReply,
    callback_ack,
    clean_text,
    cut,
    parse_skill_request,
    skill_response,
)
from providers.kakao_callback import is_kakao_callback_url

PAYLOADS = Path(__file__).parents[1] / "payloads" / "kakao"
FAMILY = "👨\u200d👩\u200d👧"


def load(name: str) -> dict[str, Any]:
    data = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def with_utterance(text: str) -> dict[str, Any]:
    data = load("skill-fallback-text.json")
    data["userRequest"]["utterance"] = text
    return data


def texts_of(response: dict[str, Any]) -> list[str]:
    return [out["simpleText"]["text"] for out in response["template"]["outputs"]]


# --- parsing the fixtures -----------------------------------------------------------------


def test_fallback_text_fixture_parses() -> None:
    req = parse_skill_request(load("skill-fallback-text.json"))
    assert req.utterance == "에어컨에서 물이 새요. 내일 오전에 방문 가능하세요?"
    assert req.bot_id == "66a1e9d0e4b0a1b2c3d4e000"
    assert req.user.bot_user_key.startswith("7d1c0b7e")
    assert req.user.plusfriend_user_key == "Hx3Lq9TzA0bc"
    assert req.user.app_user_id is None
    assert req.user.is_friend is True
    assert req.lang == "ko"
    assert req.timezone == "Asia/Seoul"
    assert (req.block_id, req.block_name) == ("66a1f0c2e4b0a1b2c3d4e5f6", "폴백 블록")
    assert req.trigger == "TEXT_INPUT"
    assert req.client_extra == {}
    assert req.params == {}
    assert req.callback_url is None


def test_quickreply_nonfriend_fixture_parses() -> None:
    req = parse_skill_request(load("skill-quickreply-nonfriend.json"))
    assert req.utterance == "영업시간"
    assert req.user.is_friend is False  # isFriend is absent, not false
    assert req.client_extra == {"faq": "hours"}
    assert req.trigger == "QUICKREPLY_BUTTON_MESSAGE"


def test_callback_worked_example_parses() -> None:
    req = parse_skill_request(load("skill-callback-example.json"))
    assert req.callback_url == (
        "https://bot-api.kakao.com/v1/bots/66a1e9d0e4b0a1b2c3d4e000/callback/EXAMPLE-ONE-TIME-TOKEN"
    )
    assert is_kakao_callback_url(req.callback_url)
    assert req.params["service"] == "차단기 교체"
    assert json.loads(req.params["sys_date"])["date"] == "2026-03-17"
    assert req.user.plusfriend_user_key == "Qm7TzK2pLx9a"
    assert req.user.is_friend is True


def test_lang_kr_and_other_values_are_accepted() -> None:
    data = load("skill-fallback-text.json")
    data["userRequest"]["lang"] = "kr"
    assert parse_skill_request(data).lang == "kr"
    data["userRequest"]["lang"] = "en"
    assert parse_skill_request(data).lang == "en"
    del data["userRequest"]["lang"]
    assert parse_skill_request(data).lang is None


def test_snake_case_only_properties_are_accepted() -> None:
    data = load("skill-fallback-text.json")
    data["userRequest"]["user"]["properties"] = {
        "bot_user_key": data["userRequest"]["user"]["id"],
        "plusfriend_user_key": "snake123",
    }
    user = parse_skill_request(data).user
    assert user.plusfriend_user_key == "snake123"
    assert user.is_friend is False


def test_unknown_keys_at_every_level_are_ignored() -> None:
    data = load("skill-callback-example.json")
    data["surprise"] = {"nested": [1, 2]}
    data["userRequest"]["accountId"] = "12345"
    data["userRequest"]["user"]["talkUserId"] = "x"
    data["userRequest"]["user"]["properties"].update(
        {"bot_user_key": "k", "accountId": "1", "talkUserId": "2", "appUserStatus": "REGISTERED"}
    )
    data["userRequest"]["block"]["extra"] = True
    data["bot"]["extra"] = None
    data["action"]["future"] = {"a": "b"}
    data["flow"]["trigger"]["new"] = 1
    data["intent"]["extra"] = {"knowledge": {"matchedKnowledges": []}}
    assert parse_skill_request(data) == parse_skill_request(load("skill-callback-example.json"))


def test_minimal_payload_is_enough() -> None:
    req = parse_skill_request(
        {"userRequest": {"user": {"id": "u1"}, "utterance": ""}, "bot": {"id": "b1"}}
    )
    assert req.utterance == ""
    assert req.user.plusfriend_user_key is None
    assert (req.trigger, req.block_id, req.callback_url, req.timezone) == (None, None, None, None)


def test_wrong_types_for_optional_fields_are_treated_as_absent() -> None:
    data = load("skill-fallback-text.json")
    data["userRequest"]["lang"] = 7
    data["userRequest"]["block"] = "not an object"
    data["userRequest"]["callbackUrl"] = ["x"]
    data["userRequest"]["timezone"] = None
    data["userRequest"]["user"]["properties"] = {
        "plusfriendUserKey": 42,
        "plusfriend_user_key": "fallback",
        "appUserId": {"id": 1},
        "isFriend": "true",  # only a JSON true counts
    }
    data["action"] = {"clientExtra": None, "params": [1, 2]}
    data["flow"] = {"trigger": "TEXT_INPUT"}
    req = parse_skill_request(data)
    assert req.lang is None
    assert (req.block_id, req.block_name, req.callback_url, req.timezone) == (None,) * 4
    assert req.user.plusfriend_user_key == "fallback"
    assert req.user.app_user_id is None
    assert req.user.is_friend is False
    assert req.client_extra == {}
    assert req.params == {}
    assert req.trigger is None


def test_client_extra_and_params_values_are_stringified() -> None:
    data = load("skill-fallback-text.json")
    data["action"]["clientExtra"] = {"n": 3, "ok": True, "obj": {"a": "가"}, "none": None}
    data["action"]["params"] = {"sys_number": {"amount": 1, "unit": None}}
    req = parse_skill_request(data)
    assert req.client_extra == {"n": "3", "ok": "true", "obj": '{"a": "가"}'}
    assert json.loads(req.params["sys_number"]) == {"amount": 1, "unit": None}


# --- rejecting what we cannot use ---------------------------------------------------------


def _broken(mutate: Any) -> dict[str, Any]:
    data = load("skill-fallback-text.json")
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "body must be a JSON object"),
        ("x", "body must be a JSON object"),
        (None, "body must be a JSON object"),
        (3, "body must be a JSON object"),
        (_broken(lambda d: d.pop("userRequest")), "userRequest is missing"),
        (_broken(lambda d: d.update(userRequest=[1])), "userRequest must be an object"),
        (_broken(lambda d: d["userRequest"].pop("user")), "userRequest.user is missing"),
        (_broken(lambda d: d["userRequest"]["user"].pop("id")), "userRequest.user.id is missing"),
        (
            _broken(lambda d: d["userRequest"]["user"].update(id="")),
            "userRequest.user.id is empty",
        ),
        (
            _broken(lambda d: d["userRequest"]["user"].update(id=12345)),
            "userRequest.user.id must be a string",
        ),
        (
            _broken(lambda d: d["userRequest"]["user"].update(id="a" * 500)),
            "userRequest.user.id is too long",
        ),
        (
            _broken(lambda d: d["userRequest"]["user"].update(id="abc\ndef")),
            "userRequest.user.id contains unprintable characters",
        ),
        (
            _broken(lambda d: d["userRequest"].update(utterance=["hi"])),
            "userRequest.utterance must be a string",
        ),
        (
            _broken(lambda d: d["userRequest"].pop("utterance")),
            "userRequest.utterance is missing",
        ),
        (_broken(lambda d: d.pop("bot")), "bot.id is missing"),
        (_broken(lambda d: d["bot"].pop("id")), "bot.id is missing"),
        (_broken(lambda d: d["bot"].update(id=None)), "bot.id is missing"),
        (_broken(lambda d: d["bot"].update(id=5)), "bot.id must be a string"),
        (_broken(lambda d: d.update(bot="b")), "bot must be an object"),
    ],
)
def test_unusable_payloads_raise_payload_error(body: object, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_skill_request(copy.deepcopy(body))
    assert str(info.value) == reason
    assert isinstance(info.value, ValueError)


def test_a_70_char_user_id_is_fine() -> None:
    data = _broken(lambda d: d["userRequest"]["user"].update(id="f" * 70))
    assert parse_skill_request(data).user.bot_user_key == "f" * 70


# --- utterance hygiene --------------------------------------------------------------------


def test_nul_and_other_controls_are_removed() -> None:
    text = parse_skill_request(with_utterance("에어\x00컨\x07 물\x1b[31m\x85새요\x7f")).utterance
    assert text == "에어컨 물[31m새요"


def test_tab_and_newline_survive_and_crlf_is_normalised() -> None:
    text = parse_skill_request(with_utterance("첫 줄\r\n둘째\t줄\r셋째\u2028넷째")).utterance
    assert text == "첫 줄\n둘째\t줄\n셋째\n넷째"


def test_bidi_overrides_and_isolates_are_removed() -> None:
    raw = "환불\u202e요해필\u202c 해주세요 \u2066x\u2069 \u202a\u202b\u202d\u2067\u2068"
    text = parse_skill_request(with_utterance(raw)).utterance
    assert text == "환불요해필 해주세요 x"
    assert not any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in text)


def test_emoji_zwj_sequences_and_hangul_are_preserved() -> None:
    raw = f"가족 {FAMILY} 사진 👍🏽 🇰🇷 감사합니다 ❤️"
    assert parse_skill_request(with_utterance(raw)).utterance == raw


def test_utterance_is_nfc_normalised_and_trimmed() -> None:
    decomposed = "\u1100\u1161\u11a8"  # 각 as conjoining jamo
    text = parse_skill_request(with_utterance(f"  \u3000{decomposed}\n ")).utterance
    assert text == "각"


def test_lone_surrogates_are_replaced_so_the_text_encodes() -> None:
    data = json.loads(
        '{"userRequest":{"user":{"id":"u"},"utterance":"a\\ud83d b"},"bot":{"id":"b"}}'
    )
    text = parse_skill_request(data).utterance
    assert text == "a\ufffd b"
    text.encode("utf-8")


def test_a_megabyte_utterance_is_capped() -> None:
    text = parse_skill_request(with_utterance("가" * 1_000_000)).utterance
    assert len(text) <= 4000
    assert text.endswith("…")
    assert text.startswith("가가가")


def test_utterance_is_not_html_escaped() -> None:
    raw = "<script>alert('x')</script> & \"q\""
    assert parse_skill_request(with_utterance(raw)).utterance == raw


# --- cutting at sensible places -----------------------------------------------------------


def test_cut_does_not_split_a_zwj_family() -> None:
    text = "a" * 8 + FAMILY + "b"
    for limit in range(9, 8 + len(FAMILY) + 1):
        out = cut(text, limit)
        assert len(out) <= limit
        assert out in ("a" * 8 + "…", "a" * 7 + "…", "a" * 8 + FAMILY + "…")
    assert cut(text, len(text)) == text


def test_cut_does_not_split_a_flag_pair() -> None:
    flags = "🇰🇷🇯🇵"
    assert cut(flags, 2, ellipsis="") == "🇰🇷"
    assert cut(flags, 3, ellipsis="") == "🇰🇷"


def test_cut_falls_back_to_codepoints_on_pathological_input() -> None:
    text = "a" + "\u0301" * 100
    assert len(cut(text, 10)) == 10


def test_clean_text_is_the_same_pipeline() -> None:
    assert clean_text(" a\x00b\u202e ", 10) == "ab"


# --- building responses -------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 3, 5])
def test_skill_response_is_valid_for_any_number_of_texts(count: int) -> None:
    texts = [f"{i + 1}번째 안내입니다." for i in range(count)]
    response = skill_response(texts)
    assert_valid_skill_response(response)
    outputs = texts_of(response)
    if count == 0:
        assert outputs == [DEFAULT_TEXT]
    elif count <= 3:
        assert outputs == texts
    else:
        assert outputs == [texts[0], texts[1], "\n\n".join(texts[2:])]


def test_blank_texts_are_dropped() -> None:
    response = skill_response(["", "  \n", "안녕하세요", "\x00"])
    assert_valid_skill_response(response)
    assert texts_of(response) == ["안녕하세요"]


def test_a_long_text_is_cut_to_1000() -> None:
    response = skill_response(["가" * 5000])
    assert_valid_skill_response(response)
    (text,) = texts_of(response)
    assert len(text) == 1000
    assert text.endswith("…")


def test_a_long_joined_third_bubble_is_cut_too() -> None:
    response = skill_response(["a", "b", "c" * 600, "d" * 600])
    assert_valid_skill_response(response)
    assert len(texts_of(response)[2]) <= 1000


def test_a_single_string_is_one_bubble_not_one_per_character() -> None:
    response = skill_response("안녕하세요")
    assert texts_of(response) == ["안녕하세요"]


def test_texts_with_nul_and_lone_surrogates_still_validate() -> None:
    response = skill_response(["a\x00b\ud800c"])
    assert_valid_skill_response(response)
    assert texts_of(response) == ["ab\ufffdc"]


def test_fifteen_quick_replies_become_ten() -> None:
    replies = [QuickReply(f"메뉴{i}", f"메뉴 {i}") for i in range(15)]
    response = skill_response(["골라 주세요"], replies)
    assert_valid_skill_response(response)
    assert [q["label"] for q in response["template"]["quickReplies"]] == [
        f"메뉴{i}" for i in range(10)
    ]


def test_a_long_label_is_cut_to_14_and_still_sends_the_whole_text() -> None:
    label = "가나다라마바사아자차카타파하" + "ㄱ" * 16
    assert len(label) == 30
    response = skill_response(["x"], [QuickReply(label, "")])
    assert_valid_skill_response(response)
    (reply,) = response["template"]["quickReplies"]
    assert reply["label"] == label[:14]
    assert reply["messageText"] == label


def test_quick_replies_are_deduplicated_by_label_and_blank_ones_dropped() -> None:
    replies = [
        QuickReply("영업시간", "영업시간", {"faq": "hours"}),
        QuickReply("영업시간", "다른 텍스트"),
        QuickReply("   ", "빈 라벨"),
        QuickReply("상담원 연결", "상담원 연결"),
    ]
    response = skill_response(["x"], replies)
    assert_valid_skill_response(response)
    assert response["template"]["quickReplies"] == [
        {
            "label": "영업시간",
            "action": "message",
            "messageText": "영업시간",
            "extra": {"faq": "hours"},
        },
        {"label": "상담원 연결", "action": "message", "messageText": "상담원 연결"},
    ]


def test_labels_equal_after_cutting_count_as_duplicates() -> None:
    replies = [QuickReply("a" * 14 + "1", "one"), QuickReply("a" * 14 + "2", "two")]
    response = skill_response(["x"], replies)
    assert [q["messageText"] for q in response["template"]["quickReplies"]] == ["one"]


def test_no_quick_replies_means_no_key() -> None:
    response = skill_response(["x"])
    assert "quickReplies" not in response["template"]
    assert "data" not in response


def test_data_is_passed_through() -> None:
    response = skill_response(["x"], data={"ticket": "Q-1"})
    assert_valid_skill_response(response)
    assert response["data"] == {"ticket": "Q-1"}


def test_response_round_trips_through_json() -> None:
    response = skill_response([f"가족 {FAMILY}"], [QuickReply("👍", "좋아요")])
    assert json.loads(json.dumps(response, ensure_ascii=False)) == response


def test_callback_ack_shape() -> None:
    ack = callback_ack("견적을 계산하고 있어요. 잠시만 기다려 주세요.")
    assert ack == {
        "version": "2.0",
        "useCallback": True,
        "data": {"text": "견적을 계산하고 있어요. 잠시만 기다려 주세요."},
    }
    assert_valid_skill_response(ack)
    assert callback_ack("\x00 ")["data"]["text"] == DEFAULT_TEXT


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("https://bot-api.kakao.com/v1/bots/b/callback/t", True),
        ("https://bot-api.kakao.com:443/v1/bots/b/callback/t", True),
        ("http://bot-api.kakao.com/v1/bots/b/callback/t", False),
        ("https://bot-api.kakao.com.evil.example/x", False),
        ("https://evil.example/?bot-api.kakao.com", False),
        ("https://user:pw@bot-api.kakao.com/x", False),
        ("https://bot-api.kakao.com:8443/x", False),
        ("https://127.0.0.1/x", False),
        ("https://bot-api.kakao.com:99999/x", False),
        ("", False),
    ],
)
def test_only_kakao_callback_urls_are_trusted(url: str, trusted: bool) -> None:
    assert is_kakao_callback_url(url) is trusted


# --- the checker itself -------------------------------------------------------------------


def test_checker_accepts_the_fixtures() -> None:
    assert_valid_skill_response(load("skill-response-example.json"))
    assert_valid_skill_response(load("skill-response-cards-example.json"))


def _valid() -> dict[str, Any]:
    return load("skill-response-example.json")


def _outputs(n: int) -> list[dict[str, Any]]:
    return [{"simpleText": {"text": f"t{i}"}} for i in range(n)]


def _qr(n: int) -> list[dict[str, Any]]:
    return [{"label": f"q{i}", "action": "message", "messageText": f"q{i}"} for i in range(n)]


_DELETE = object()


def _set(path: str, value: object) -> dict[str, Any]:
    obj = _valid()
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return obj


@pytest.mark.parametrize(
    ("bad", "hint"),
    [
        (_set("version", _DELETE), "version"),
        (_set("version", "1.0"), "version"),
        (_set("version", 2.0), "version"),
        (_set("template", _DELETE), "template"),
        (_set("template.outputs", []), "0 outputs"),
        (_set("template.outputs", _outputs(4)), "4 outputs"),
        (_set("template.outputs", {"simpleText": {"text": "x"}}), "must be a list"),
        (_set("template.outputs.0.simpleText.text", "가" * 1001), "1001 characters"),
        (_set("template.outputs.0.simpleText.text", ""), "empty"),
        (_set("template.outputs.0.simpleText.text", 5), "must be a string"),
        (_set("template.outputs.0.simpleText.text", "a\x00b"), "NUL"),
        (_set("template.outputs.0", {"fancyText": {"text": "x"}}), "exactly one of"),
        (
            _set("template.outputs.0", {"simpleText": {"text": "x"}, "textCard": {}}),
            "exactly one of",
        ),
        (_set("template.quickReplies", _qr(11)), "11 quick replies"),
        (_set("template.quickReplies.0.label", "a" * 15), "15 characters"),
        (_set("template.quickReplies.0.label", ""), "empty"),
        (_set("template.quickReplies.0.action", "webLink"), "message or block"),
        (_set("template.quickReplies.0.messageText", _DELETE), "messageText"),
        (_set("template.quickReplies.0.action", "block"), "blockId"),
        (_set("template.quickReplies.0.lable", "typo"), "unknown keys"),
        (_set("template.outputs.0.simpleText.text", {1, 2}), "JSON value"),
        (_set("data", {1: "x"}), "keys must be strings"),
        (_set("data", {"x": float("nan")}), "NaN"),
        (_set("template.outputs.0.simpleText.text", "\ud800"), "not JSON-serialisable"),
        (_set("useCallback", "yes"), "boolean"),
        (_set("quickReplies", []), "unknown top-level keys"),
        (_set("context", {"values": [{"name": "f", "lifeSpan": -1}]}), "lifeSpan"),
    ],
)
def test_checker_rejects_bad_responses(bad: dict[str, Any], hint: str) -> None:
    with pytest.raises(AssertionError, match="invalid SkillResponse") as info:
        assert_valid_skill_response(bad)
    assert hint in str(info.value)


@pytest.mark.parametrize("bad", [None, [], "2.0", {"version": "2.0", "useCallback": False}])
def test_checker_rejects_non_responses(bad: object) -> None:
    with pytest.raises(AssertionError):
        assert_valid_skill_response(bad)


def test_checker_accepts_a_callback_ack_without_template() -> None:
    assert_valid_skill_response({"version": "2.0", "useCallback": True})
    with pytest.raises(AssertionError, match="template"):
        assert_valid_skill_response({"version": "2.0", "useCallback": True, "template": {}})
