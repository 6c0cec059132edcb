"""Phone numbers: stored as E.164, shown masked in logs.

The masker (providers/masking.py) is checked against `phonenumbers`, Google's numbering-plan
library: every Korean number of a seeded sample and every country's example numbers, in
each form the library formats or parses them, must come out masked — and nothing the
library finds a number in may remain; dates, offsets and ids must come out unchanged.
"""

import logging
import random
import re
from collections.abc import Iterator

import phonenumbers
import pytest
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberMatcher

from bot.logs import Redact, TextFormatter
from core.phone import PhoneError, to_domestic, to_e164
from providers.masking import mask_in_text
from providers.masking import mask_phone as mask


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("010-1234-5678", "+821012345678"),
        ("01012345678", "+821012345678"),
        ("+82 10 1234 5678", "+821012345678"),
        ("02-123-4567", "+8221234567"),
        ("1588-1234", "+8215881234"),
        ("+1 415 555 0123", "+14155550123"),
        ("0082-10-1234-5678", "+821012345678"),
    ],
)
def test_e164(raw: str, e164: str) -> None:
    assert to_e164(raw) == e164


@pytest.mark.parametrize("raw", ["", "12", "abc", "010-12"])
def test_bad_numbers(raw: str) -> None:
    with pytest.raises(PhoneError):
        to_e164(raw)


def test_domestic_and_mask() -> None:
    assert to_domestic("+821012345678") == "010-1234-5678"
    assert to_domestic("+8221234567") == "02-123-4567"
    assert mask("+821012345678") == "010-****-5678"
    assert mask("010-1234-5678") == "010-****-5678"
    assert "5550123" not in mask("+14155550123")


def test_log_lines_never_show_a_whole_number() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, "f", 1, "sent to %s and %s", ("010-9876-5432", "+14155550123"), None
    )
    record.phone = "01098765432"
    Redact().filter(record)
    line = TextFormatter().format(record)
    assert "9876" not in line
    assert "5550123" not in line
    assert "010-****-5432" in line
    assert mask_in_text("call 010.1234.5678 now") == "call 010-****-5678 now"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22 11:20:00,230 WARNING",
        "next run at: 2026-11-22 11:20:01 UTC",
        "order 12345678",
        "v1.2.3",
        # the access log's time, with its offset from UTC
        '[22/Nov/2026:17:13:36 +0000] "GET /simulator HTTP/1.1" 200',
        "[22/Nov/2026:17:13:36 +0900]",
        "[22/Nov/2026:17:13:36 +1400]",
    ],
)
def test_dates_and_ids_are_not_taken_for_phone_numbers(text: str) -> None:
    assert mask_in_text(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("from +82 10-1234-5678.", "from 010-****-5678."),
        ("to +14155550123", "to +141****0123"),
        ("call 02-123-4567", "call 02-***-4567"),
        ("1588-1234 센터", "1588-1234 센터"),
    ],
)
def test_numbers_in_text_are_masked(text: str, masked: str) -> None:
    assert mask_in_text(text) == masked


# --------------------------------------------------------------------------- the corpus

# Each number is put between these, as log lines and vendor errors carry them: after a
# colon, glued to Hangul, in brackets, before a comma.
CONTEXTS = [("to ", " failed"), ("수신번호:", "로 보내지 못했어요"), ("(tel ", ")"), ("[", "], ok")]
FULL_WIDTH = str.maketrans(
    {**{str(i): chr(0xFF10 + i) for i in range(10)}, "+": "＋", "-": "－", " ": "\u3000"}
)


def korean_numbers(count: int = 150) -> list[PhoneNumber]:
    """A seeded sample of numbers phonenumbers holds valid in Korea: mobile (010, the old
    011–019), Seoul and the regions, 070, 050x, 080."""
    rng = random.Random(20261122)
    prefixes = ["10", "10", "10", "11", "16", "19", "2", "31", "32", "33", "41", "42", "43", "44"]
    prefixes += ["51", "52", "53", "54", "55", "61", "62", "63", "64", "70", "505", "80"]
    found: list[PhoneNumber] = []
    while len(found) < count:
        prefix = rng.choice(prefixes)
        rest = "".join(rng.choice("0123456789") for _ in range(rng.choice((7, 8))))
        number = phonenumbers.parse("0" + prefix + rest, "KR")
        if phonenumbers.is_valid_number(number):
            found.append(number)
    return found


def korean_forms(number: PhoneNumber) -> Iterator[str]:
    """How a Korean number is written: the library's formats, the same without "+" (as
    vendors send it), domestic variants people type, international prefixes, full width."""
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    rfc3966 = phonenumbers.format_number(number, PhoneNumberFormat.RFC3966)
    yield from (e164, international, national, rfc3966.removeprefix("tel:"))
    yield from (e164[1:], international[1:], international[1:].replace(" ", "-"))
    yield from (national.replace("-", ""), national.replace("-", "."), national.replace("-", " "))
    head, tail = national.split("-", 1)
    yield f"({head}) {tail}"
    yield international.replace(" ", " (0)", 1)
    yield "001-" + international[1:]
    yield "00700 " + international[1:]
    yield national.translate(FULL_WIDTH)
    yield international.translate(FULL_WIDTH)


def world_numbers() -> list[PhoneNumber]:
    """The library's example mobile and fixed-line number of every country it knows."""
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS - {"KR"}):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None and number not in found:
                found.append(number)
    return found


def international_forms(number: PhoneNumber) -> Iterator[str]:
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    rfc3966 = phonenumbers.format_number(number, PhoneNumberFormat.RFC3966)
    yield from (e164, international, rfc3966.removeprefix("tel:").split(";")[0])
    yield international.translate(FULL_WIDTH)


def left_in(text: str, number: PhoneNumber) -> bool:
    """Does phonenumbers still find `number` in `text`, or its digits whole?"""
    digits = re.sub(r"\D", "", phonenumbers.normalize_digits_only(text))
    if str(number.national_number) in digits:
        return True
    return any(m.number == number for m in PhoneNumberMatcher(text, "KR"))


KOREAN = korean_numbers()
WORLD = world_numbers()


def test_the_corpus_is_what_phonenumbers_reads() -> None:
    """The forms are the library's own reading of each number (the oracle, checked)."""
    for number in KOREAN[:40]:
        for form in korean_forms(number):
            assert phonenumbers.parse(form, "KR") == number, form
    for number in WORLD:
        for form in international_forms(number):
            assert phonenumbers.parse(form, "KR") == number, form
    assert len(KOREAN) == 150
    assert len(WORLD) > 400


def test_every_korean_form_is_masked_whole() -> None:
    for number in KOREAN:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        masked = mask(e164)
        assert re.fullmatch(r"0\d{1,2}-\*{3,6}-\d{4}", masked), masked
        for form in korean_forms(number):
            for before, after in CONTEXTS:
                text = f"{before}{form}{after}"
                assert mask_in_text(text) == f"{before}{masked}{after}", text


def test_every_country_in_international_form_is_masked() -> None:
    for number in WORLD:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        forms = [*international_forms(number), "00" + e164[1:], "001 " + e164[1:]]
        for form in forms:
            for before, after in CONTEXTS:
                text = mask_in_text(f"{before}{form}{after}")
                assert not left_in(text, number), (form, text)
                assert text.startswith(before), text
                assert text.endswith(after), text
                if form.startswith(("+", "＋")):
                    assert text == f"{before}{mask(e164)}{after}"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22 10:15:00,230 INFO dangol.outbox: outbox 12 sent",
        "2026-11-22T10:15:00.010123+09:00",
        "2026.11.22 10:15",
        "2026년 11월 22일 10시 15분",
        "next run at: 2026-11-22 11:20:01 KST (+0900)",
        '127.0.0.1 [22/Nov/2026:17:13:36 +0000] "POST /hooks/kakao/demo HTTP/1.1" 200 512',
        "order 12345678, invoice 20261122101500, 사업자번호 123-45-67890",
        "outbox 1234567 (owner_notification via solapi) attempt 3",
        "request 550e8400-e29b-41d4-a716-446655440000 id M4V20261122101500ABCDEFGHIJ",
        "hours 0900-1800, price ₩120,000, version 3.14.5",
        "+1400 and +0000 and +05:30",
    ],
)
def test_what_is_not_a_phone_number_survives(text: str) -> None:
    assert mask_in_text(text) == text
    # the library finds no valid number in it either
    assert not list(PhoneNumberMatcher(text, "KR", leniency=phonenumbers.Leniency.VALID))


def test_decimal_fractions_are_not_numbers() -> None:
    # Here the library disagrees (it finds 010-1234-5678 in 0.01012345678): digits after a
    # decimal point are a measurement in a log line, not a phone number.
    assert mask_in_text("took 0.01012345678 s") == "took 0.01012345678 s"


def test_public_business_numbers_are_left_alone() -> None:
    # 1588-1234 is a number (a shop's 대표번호), but a public one: not personal data.
    assert mask_in_text("고객센터 1588-1234") == "고객센터 1588-1234"


def test_the_forms_the_old_maskers_missed() -> None:
    assert mask_in_text("from 821055556666.") == "from 010-****-6666."
    assert mask_in_text("82-10-5555-6666") == "010-****-6666"
    assert mask_in_text("+82 10 5555 6666로") == "010-****-6666로"
    assert mask_in_text("０１０－５５５５－６６６６") == "010-****-6666"
    assert mask_in_text("at 2026-11-22 10:15") == "at 2026-11-22 10:15"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # a time with its UTC offset right before a number: the offset stays, the number goes
        (
            "2026-11-22T10:15:00+09:00 010-1234-5678로 보냄",
            "2026-11-22T10:15:00+09:00 010-****-5678로 보냄",
        ),
        (
            "2026-11-22T10:15:00-08:00 from +1 415-555-0123",
            "2026-11-22T10:15:00-08:00 from +141****0123",
        ),
        ("at 10:15+0900 +82-10-1234-5678", "at 10:15+0900 010-****-5678"),
        ("UTC+14:00 +14155550123", "UTC+14:00 +141****0123"),
        ("+44 20 7946 0958 (UTC+00:00)", "+442*****0958 (UTC+00:00)"),
        # full width: a date, a time and an offset are no number; a number is one
        (
            "２０２６－１１－２２ １０：１５ ＋０９：００",
            "２０２６－１１－２２ １０：１５ ＋０９：００",
        ),
        ("＋８２ １０ １２３４ ５６７８", "010-****-5678"),
    ],
)
def test_times_offsets_and_numbers_side_by_side(text: str, masked: str) -> None:
    assert mask_in_text(text) == masked


def test_one_number_in_full_width_is_masked_as_typed() -> None:
    assert mask("０１０－１２３４－５６７８") == "010-****-5678"
    assert mask("＋１ ４１５ ５５５ ０１２３") == "+141****0123"
