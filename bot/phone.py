"""Phone numbers: E.164 for storage, Korean domestic form for people, masked for logs."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d+")
# What looks like a phone number inside free text: international (+82 10-1234-5678,
# +14155550123) and Korean domestic (010-1234-5678, 01012345678, 02.123.4567). Business
# numbers like 1588-1234 are public and left alone; so are dates (2026-11-22 10:15:00) and
# UTC offsets (+0900): an international number starts 1–9 and has at least 7 digits.
_PHONE_IN_TEXT = re.compile(
    r"(?<![\w+])("
    r"\+(?=[1-9](?:[ -]?\d){6})\d{1,3}[ -]?\d{1,4}(?:[ -]?\d{2,4}){1,3}"
    r"|0\d{1,2}[-. ]?\d{3,4}[-. ]?\d{4}"
    r")(?![\w])"
)


class PhoneError(ValueError):
    pass


def to_e164(raw: str, default_country: str = "82") -> str:
    """Normalise a number typed by a person or sent by a vendor to E.164 (+821012345678)."""
    text = raw.strip()
    if not text:
        raise PhoneError("phone number is empty")
    plus = text.startswith("+")
    digits = "".join(_DIGITS.findall(text))
    if not plus and digits.startswith("00"):
        plus, digits = True, digits[2:]
    if plus:
        if not 8 <= len(digits) <= 15:
            raise PhoneError(f"not a valid international number: {mask(raw)}")
        return "+" + digits
    if default_country == "82" and digits.startswith("0") and 9 <= len(digits) <= 11:
        return "+82" + digits[1:]
    if default_country == "82" and digits.startswith(("15", "16", "18")) and len(digits) == 8:
        return "+82" + digits  # 1588-xxxx style numbers have no trunk prefix
    raise PhoneError(f"not a valid phone number: {mask(raw)}")


def to_domestic(e164: str) -> str:
    """+821012345678 → 010-1234-5678; other countries stay in E.164."""
    if not e164.startswith("+82"):
        return e164
    national = e164[3:]
    if len(national) == 8 and national.startswith(("15", "16", "18")):
        return f"{national[:4]}-{national[4:]}"
    national = "0" + national
    if national.startswith("02"):
        head, rest = national[:2], national[2:]
    else:
        head, rest = national[:3], national[3:]
    split = len(rest) - 4
    return f"{head}-{rest[:split]}-{rest[split:]}"


def mask(number: str) -> str:
    """Keep the first three and last four digits: 010-****-5678, +8210****5678."""
    digits = "".join(_DIGITS.findall(number))
    if len(digits) < 7:
        return "*" * len(number)
    if number.startswith("+82") or digits.startswith("0"):
        domestic = to_domestic("+82" + digits[2:]) if number.startswith("+82") else number
        parts = re.split(r"[-. ]", domestic)
        if len(parts) == 3:
            return f"{parts[0]}-{'*' * len(parts[1])}-{parts[2]}"
        d = "".join(_DIGITS.findall(domestic))
        return f"{d[:3]}-{'*' * (len(d) - 7)}-{d[-4:]}"
    prefix = "+" if number.startswith("+") else ""
    return f"{prefix}{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_in_text(text: str) -> str:
    """Mask every phone-number-like run in free text (log lines, error messages)."""
    return _PHONE_IN_TEXT.sub(lambda m: mask(m.group(1)), text)
