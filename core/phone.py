"""Phone numbers: E.164 for storage, Korean domestic form for people.

Masked for logs and screens by `providers.masking` — the one masker, shared with the
adapters (which may not import `bot/`).
"""

from __future__ import annotations

import re

from providers.masking import mask_phone

_DIGITS = re.compile(r"\d+")


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
            raise PhoneError(f"not a valid international number: {mask_phone(raw)}")
        return "+" + digits
    if default_country == "82" and digits.startswith("0") and 9 <= len(digits) <= 11:
        return "+82" + digits[1:]
    if default_country == "82" and digits.startswith(("15", "16", "18")) and len(digits) == 8:
        return "+82" + digits  # 1588-xxxx style numbers have no trunk prefix
    raise PhoneError(f"not a valid phone number: {mask_phone(raw)}")


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
