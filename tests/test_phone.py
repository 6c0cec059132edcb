"""Phone numbers: stored as E.164, shown masked in logs."""

import logging

import pytest

from bot.logs import MaskPhones, TextFormatter
from bot.phone import PhoneError, mask, mask_in_text, to_domestic, to_e164


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
    MaskPhones().filter(record)
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
