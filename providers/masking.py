"""Phone numbers out of log lines and error messages: the one masker dangol has.

It lives in `providers/` because adapters mask vendor error texts and recipients, and this
package imports nothing of `bot/`; `bot/` (its log filter, the console) imports it from here.

What it takes for a phone number, in any of the forms people, vendors and libraries write:

- a Korean number, domestic or international: ``010-1234-5678``, ``01012345678``,
  ``(02) 123-4567``, ``0505-123-4567``, ``+82 10-1234-5678``, ``+821012345678``,
  ``821012345678``, ``82-10-1234-5678``, ``+82 (0)10 …``, ``0082-10-…``, ``001-82-…``;
- any number in international form: ``+`` or an international prefix (``00``, ``001``…)
  with 7 to 15 digits: ``+1 415-555-0123``, ``+44 20 7946 0958``, ``001 1 415-555-0123``;
- each of those in full-width characters (``０１０－１２３４－５６７８``), as Korean
  keyboards type them, or with Unicode dashes and spaces.

What it leaves alone: dates and times (``2026-11-22 10:15:00``, ``22/Nov/2026:17:13:36``),
UTC offsets (``+0900``, ``+1400``), decimals, ids and order numbers that do not have a
phone number's shape (``12345678``, ``20261122101500``), and business numbers
(``1588-1234``), which are public. A foreign number written in its own national form
(``(415) 555-0123``) is not recognised: without a country code it cannot be told from an
order number; dangol itself always writes foreign numbers in E.164.

A regular expression over the numbering plan, not `phonenumbers.PhoneNumberMatcher`: the
matcher takes 0.5–0.8 ms per log line (this runs on every line, the access log included,
where the expression takes a few microseconds), at its ``VALID`` leniency it lets through a
number outside the ranges its metadata knows, and at ``POSSIBLE`` it masks ``2026`` and
order numbers. `phonenumbers` is the test's oracle instead (tests/test_phone.py).
"""

from __future__ import annotations

import re

# Full-width digits and signs (as a Korean IME types them) and the Unicode dashes and
# spaces, each mapped to the one ASCII character it stands for — one for one, so a match
# in the translated text has the same position in the original.
_ASCII = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},  # ０–９
        "＋": "+",
        "（": "(",
        "）": ")",
        "．": ".",
        "\u00a0": " ",
        "\u3000": " ",
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uff0d", "-"),
    }
)

# Between the groups of a number: a space, dash, dot or bracket, at most two of them.
_SEP = r"[ .()-]{0,2}"
# A Korean number without its trunk 0: the prefix (mobile 01x, Seoul 02, regions 031–064,
# 070, 080, 050x), then 3–5 digits (050x numbers have five), then 4.
_KR_NATIONAL = rf"(?:1\d|2|[3-6]\d|70|80|50\d?){_SEP}\d{{3,5}}{_SEP}\d{{4}}"
# What comes before it: the domestic trunk 0, or the country code 82 — with or without a
# "+" or an international prefix (00, 001, 002, 00700…), and with the trunk 0 people keep.
_KR_LEAD = r"(?:(?:\+|00(?:700|[1-9])?)[ .-]?)?82[ .-]{0,2}(?:\(0\)[ .-]?|0[ .-]?)?|\(?0"
# Any country: "+" or an international prefix, a country code not starting with 0, and
# 7–15 digits in all ("+0900", "+1400" are UTC offsets, not numbers).
_INTERNATIONAL = rf"\+ ?[1-9](?:{_SEP}\d){{6,14}}|00[1-9](?:{_SEP}\d){{6,14}}"

_PHONE_IN_TEXT = re.compile(
    r"(?=[\d+(])"  # a cheap first test at each position, before the lookbehinds
    # Not glued to a longer number, a word of Latin letters (ids, hashes) or a decimal
    # fraction. Hangul may touch it: "010-1234-5678로 연락 주세요".
    r"(?<![\dA-Za-z_+])(?<!\d[.,])"
    rf"(?:(?:{_KR_LEAD})(?P<kr>{_KR_NATIONAL})|(?P<intl>{_INTERNATIONAL}))"
    r"(?![\dA-Za-z_])"
)
_DIGITS = re.compile(r"\d")
# Characters `_ASCII` changes: text without any (nearly all) is matched as it is.
_WIDE = re.compile("[" + re.escape("".join(map(chr, _ASCII))) + "]")


def _korean(national: str) -> str:
    """01012345678 → 010-****-5678; Seoul's 02 keeps two digits: 02-****-5678."""
    head = 2 if national.startswith("02") else 3
    return f"{national[:head]}-{'*' * (len(national) - head - 4)}-{national[-4:]}"


def _other(digits: str, plus: bool) -> str:
    """+141****0123; a short number (some countries' have 5 digits) keeps only 2 at the end,
    so that most of it is hidden: +682***34."""
    tail = 4 if len(digits) >= 11 else 2
    return f"{'+' if plus else ''}{digits[:3]}{'*' * (len(digits) - 3 - tail)}{digits[-tail:]}"


def mask_phone(number: str) -> str:
    """One number, as stored or typed: 010-****-3333 for a Korean number (E.164 or
    domestic), +141****0123 for others; all stars when it is too short to be one."""
    text = number.strip().translate(_ASCII)
    digits = "".join(_DIGITS.findall(text))
    if len(digits) < 7:
        return "*" * len(number)
    if text.startswith("+82"):
        national = digits[2:]
        return _korean("0" + national.removeprefix("0"))
    if digits.startswith("0") and not digits.startswith("00"):
        return _korean(digits)
    return _other(digits, text.startswith("+"))


def _replace(match: re.Match[str]) -> str:
    if match.group("kr") is not None:
        return _korean("0" + "".join(_DIGITS.findall(match.group("kr"))))
    found = match.group("intl")
    return _other("".join(_DIGITS.findall(found)), found.startswith("+"))


def mask_in_text(text: str) -> str:
    """Every phone number in free text (log lines, vendor errors) masked, the rest as is."""
    if text.isascii() or not _WIDE.search(text):
        return _PHONE_IN_TEXT.sub(_replace, text)
    # Matched on the ASCII twin, replaced in the original (the positions are the same).
    twin = text.translate(_ASCII)
    parts: list[str] = []
    end = 0
    for match in _PHONE_IN_TEXT.finditer(twin):
        parts += [text[end : match.start()], _replace(match)]
        end = match.end()
    if not parts:
        return text
    parts.append(text[end:])
    return "".join(parts)
