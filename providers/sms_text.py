"""Korean SMS sizing: CP949 bytes, SMS vs LMS, subjects, characters a handset cannot show.

Carriers count KS 완성형 bytes (ASCII 1, Hangul 2) and SOLAPI rejects characters outside it
(status 1029). We count with Python's ``cp949`` codec — never ``euc-kr``, which turns
syllables such as 햏 into 8-byte jamo sequences (PROTOCOLS.md §3).

A character CP949 cannot encode is either replaced by a look-alike that it can (the table
``SUBSTITUTES``: ₩ → ￦ U+FFE6, dashes → ―, bullets → ·, invisible joiners and emoji
variation selectors dropped) or, when no honest substitute exists (emoji, ✓ …), the message
is refused with `UnsendableText` naming the characters. It is never sent with "?" in place
of what the owner wrote.

One exception, asked for by the caller with ``replace_with=UNSHOWN``: a notice *to the
owner* quotes what a customer wrote, and a customer's "😊" must not cost the owner the
notice. There each character without a substitute becomes "□" (a run of them, one) — a
visible gap the owner reads as "something here", with the whole message in the console.

Over the LMS limit (2000 bytes) the text is refused, not split and not truncated: a split
LMS arrives as separate, possibly reordered messages billed twice, and an outbox row stands
for exactly one vendor message with one id and one delivery report. 2000 bytes is about
1000 Hangul — a longer customer message is almost certainly a mistake the owner should see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

UNSHOWN = "□"  # KS X 1001 white square: stands for what SMS cannot carry, in owner notices
SMS_MAX_BYTES = 90
LMS_MAX_BYTES = 2000
SUBJECT_MAX_BYTES = 40

# Readable stand-ins CP949 can encode. "" drops an invisible character.
SUBSTITUTES: dict[str, str] = {
    "₩": "￦",  # PROTOCOLS.md §3: fullwidth won sign U+FFE6
    "\u00a0": " ",  # no-break space
    "\u2002": " ",
    "\u2003": " ",
    "\u2009": " ",
    "\u2013": "-",  # en dash
    "\u2014": "―",  # em dash → horizontal bar (KS X 1001)
    "\u2022": "·",  # bullet → middle dot
    "\u2212": "-",  # minus sign
    "\u200b": "",  # zero-width space
    "\u200c": "",
    "\u200d": "",
    "\ufeff": "",
    "\ufe0f": "",  # emoji variation selector (☎️ → ☎)
    "\ufe0e": "",
}


class UnsendableText(ValueError):
    """The text cannot go out as SMS/LMS; `reason` is Korean, for the owner's console."""

    def __init__(self, reason: str, *, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def cp949_len(text: str) -> int:
    """Bytes the carrier counts. Raises UnicodeEncodeError for unencodable characters."""
    return len(text.encode("cp949"))


def _encodable(char: str) -> bool:
    try:
        char.encode("cp949")
    except UnicodeEncodeError:
        return False
    return True


def to_cp949_text(text: str, *, replace_with: str | None = None) -> str:
    """`text` with substitutes applied; UnsendableText if a character has none — or, with
    `replace_with`, that instead of each run of such characters."""
    out: list[str] = []
    bad: list[str] = []
    for char in text.replace("\r\n", "\n"):
        if _encodable(char):
            out.append(char)
        elif char in SUBSTITUTES:
            out.append(SUBSTITUTES[char])
        elif replace_with is not None:
            if not out or out[-1] != replace_with:
                out.append(replace_with)
        elif char not in bad:
            bad.append(char)
    if bad:
        shown = "".join(bad[:5]) + ("…" if len(bad) > 5 else "")
        raise UnsendableText(f"문자로 보낼 수 없는 글자({shown})가 있어요", code="unencodable")
    return "".join(out)


def cut_bytes(text: str, limit: int) -> str:
    """The longest prefix of `text` within `limit` CP949 bytes (never half a character)."""
    used = 0
    for i, char in enumerate(text):
        used += cp949_len(char)
        if used > limit:
            return text[:i]
    return text


def make_subject(text: str, limit: int = SUBJECT_MAX_BYTES) -> str:
    """An LMS subject from the first non-empty line, cut to `limit` bytes."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return cut_bytes(line, limit).rstrip()
    return ""


@dataclass(frozen=True, slots=True)
class SizedText:
    kind: Literal["SMS", "LMS", "MMS"]
    text: str
    subject: str | None  # LMS/MMS only
    size: int  # CP949 bytes of `text`


def _body(text: str, replace_with: str | None) -> tuple[str, int]:
    """The text as carriers take it and its size; UnsendableText if empty or over 2000."""
    body = to_cp949_text(text, replace_with=replace_with)
    if not body.strip():
        raise UnsendableText("보낼 내용이 비어 있어요", code="empty")
    size = cp949_len(body)
    if size > LMS_MAX_BYTES:
        raise UnsendableText(
            f"문자가 너무 길어요 ({size}바이트, 최대 {LMS_MAX_BYTES}바이트 — 한글 약 1000자)",
            code="too_long",
        )
    return body, size


def _subject(body: str, subject: str | None, replace_with: str | None) -> str | None:
    title = to_cp949_text(subject, replace_with=replace_with).strip() if subject else ""
    title = cut_bytes(" ".join(title.split()), SUBJECT_MAX_BYTES) if title else make_subject(body)
    return title or None


def size_text(
    text: str, subject: str | None = None, *, replace_with: str | None = None
) -> SizedText:
    """SMS when ≤ 90 bytes (a subject is dropped: SMS cannot carry one, 1013), else LMS
    ≤ 2000 bytes with a subject ≤ 40 bytes (given, or made from the first line).
    `replace_with`: see `to_cp949_text` (owner notices only)."""
    body, size = _body(text, replace_with)
    if size <= SMS_MAX_BYTES:
        return SizedText("SMS", body, None, size)
    return SizedText("LMS", body, _subject(body, subject, replace_with), size)


def size_mms_text(
    text: str, subject: str | None = None, *, replace_with: str | None = None
) -> SizedText:
    """The text of an MMS: ≤ 2000 bytes like an LMS, subject ≤ 40 bytes. A subject is
    made from the first line only for a text longer than an SMS: a short caption under a
    photo needs no title repeating it (SOLAPI's MMS subject is optional)."""
    body, size = _body(text, replace_with)
    if subject or size > SMS_MAX_BYTES:
        return SizedText("MMS", body, _subject(body, subject, replace_with), size)
    return SizedText("MMS", body, None, size)
