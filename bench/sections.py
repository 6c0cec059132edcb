"""bench/RESULTS.md is written by two scripts: run.py owns the file, and each other benchmark
owns one section between `<!-- name -->` and `<!-- /name -->`. Whoever writes keeps the rest."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- {re.escape(name)} -->\n.*?<!-- /{re.escape(name)} -->\n?", re.S)


def get(text: str, name: str) -> str | None:
    """The section `name` of `text`, markers included, or None."""
    found = _pattern(name).search(text)
    return found.group(0).rstrip("\n") + "\n" if found else None


def put(text: str, name: str, body: str) -> str:
    """`text` with section `name` replaced by `body` (appended if it was not there)."""
    block = f"<!-- {name} -->\n{body.strip()}\n<!-- /{name} -->\n"
    if _pattern(name).search(text):
        return _pattern(name).sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block if text.strip() else block


def every(text: str) -> list[str]:
    """Every marked section of `text`, in order, markers included."""
    return [
        m.group(0).rstrip("\n") + "\n"
        for m in re.finditer(r"<!-- ([\w-]+) -->\n.*?<!-- /\1 -->\n?", text, re.S)
    ]


def read() -> str:
    return RESULTS.read_text("utf-8") if RESULTS.exists() else ""


def write_section(name: str, body: str) -> None:
    RESULTS.write_text(put(read(), name, body), "utf-8")
