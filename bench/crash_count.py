"""bench/crash.py's counting: every message by the tag in its text, at the vendors and in dangol.

Kept apart from the harness so the rules of what counts as lost, sent twice or wrongly given
up read in one place.
"""

from __future__ import annotations

import collections
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sections

if TYPE_CHECKING:
    from crash import Options

ROOT = Path(__file__).resolve().parent.parent
TAG = re.compile(r"\(#c(\d+)\)")
OPEN = ("pending", "sending", "unknown")
LABELS = {"sqlite": "SQLite, 1 process", "postgresql": "PostgreSQL, 2 processes"}


def tag(n: int) -> str:
    """What ends message `n`'s text, so a vendor's copy can be traced back to it."""
    return f"(#c{n})"


def tag_of(text: str) -> int | None:
    found = TAG.search(text or "")
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Planned:
    n: int
    vendor: str  # solapi | twilio
    kind: str  # reply | notice
    text: str
    customer: int


@dataclass(frozen=True)
class Row:
    id: int
    provider: str
    status: str
    last_error: str | None
    text: str


@dataclass
class Result:
    db: str = ""
    planned: int = 0
    enqueued: int = 0
    kills: dict[str, int] = field(default_factory=dict)
    outages: int = 0
    seconds: float = 0.0
    settled: bool = False
    # at the vendors, one per message
    once: int = 0
    twice: int = 0  # messages that arrived two or more times
    extra_copies: int = 0
    never: int = 0
    # in dangol
    sent: int = 0
    dead: int = 0
    stuck: int = 0
    lost: int = 0  # dangol says sent; no vendor ever had it
    dead_in_doubt: int = 0  # held by a process when it was killed
    dead_wrong_delivered: int = 0  # given up, no kill near it, and the vendor had it
    dead_wrong_never: int = 0  # given up, no kill near it, and never attempted
    missing_rows: int = 0  # planned but no outbox row (the harness failed to enqueue)
    by_vendor: dict[str, collections.Counter[str]] = field(default_factory=dict)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    notes: list[str] = field(default_factory=list)

    @property
    def wrongly_given_up(self) -> int:
        return self.dead_wrong_delivered + self.dead_wrong_never

    @property
    def passed(self) -> bool:
        return (
            self.settled
            and self.twice == self.lost == self.stuck == self.wrongly_given_up == 0
            and self.missing_rows == 0
        )


def count(
    planned: dict[int, Planned],
    rows: list[Row],
    received: dict[str, dict[str, Any]],
    in_flight: set[int],
) -> Result:
    """`received`: each fake vendor's /_harness/received; `in_flight`: ids of rows a
    process held (status sending) at the moment it was killed."""
    r = Result(planned=len(planned))
    copies: collections.Counter[int] = collections.Counter()
    for log in received.values():
        for message in log["messages"]:
            n = tag_of(message["text"])
            if n is not None:
                copies[n] += 1
    by_tag = {n: row for row in rows if (n := tag_of(row.text)) is not None}
    for n, m in planned.items():
        row = by_tag.get(n)
        got = copies[n]
        v = r.by_vendor.setdefault(m.vendor, collections.Counter())
        v["messages"] += 1
        if got == 1:
            r.once += 1
        elif got > 1:
            r.twice += 1
            r.extra_copies += got - 1
            v["twice"] += 1
        else:
            r.never += 1
        if row is None:
            r.missing_rows += 1
            continue
        if row.status == "sent":
            r.sent += 1
            if got == 0:
                r.lost += 1
                v["lost"] += 1
        elif row.status in OPEN:
            r.stuck += 1
            v["stuck"] += 1
        elif row.status == "dead":
            r.dead += 1
            v["dead"] += 1
            r.reasons[_reason(row.last_error)] += 1
            if row.id in in_flight:
                r.dead_in_doubt += 1
            elif got:
                r.dead_wrong_delivered += 1
                v["wrongly dead, delivered"] += 1
            else:
                r.dead_wrong_never += 1
                v["wrongly dead, never sent"] += 1
    return r


def _reason(error: str | None) -> str:
    return re.sub(r"\d+", "N", error or "(no reason)")[:90]


# --------------------------------------------------------------------------- reporting

HEADER = (
    "| database | messages | kills (SIGKILL + SIGTERM) | lookup outages | delivered once "
    "| twice or more | never | lost | stuck | dead: in doubt | dead wrongly: delivered "
    "| dead wrongly: never sent | time | target |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(r: Result) -> str:
    kills = f"{r.kills.get('SIGKILL', 0)} + {r.kills.get('SIGTERM', 0)}"
    verdict = "met" if r.passed else "**missed**"
    return (
        f"| {LABELS.get(r.db, r.db)} | {r.planned} | {kills} | {r.outages} | {r.once} "
        f"| {r.twice} | {r.never} | {r.lost} | {r.stuck} | {r.dead_in_doubt} "
        f"| {r.dead_wrong_delivered} | {r.dead_wrong_never} | {r.seconds:.0f} s | {verdict} |"
    )


def details(r: Result) -> list[str]:
    label = LABELS.get(r.db, r.db)
    out = []
    for vendor, c in sorted(r.by_vendor.items()):
        parts = ", ".join(f"{k} {v}" for k, v in c.items() if k != "messages") or "no trouble"
        out.append(f"- {label}, {vendor}: {c['messages']} messages; {parts}")
    out += [f"- {label}, dead rows: {n} × “{why}”" for why, n in r.reasons.most_common(5)]
    out += [f"- {label}: {note}" for note in r.notes]
    if r.missing_rows:
        out.append(f"- {label}: {r.missing_rows} planned messages have no outbox row")
    if r.extra_copies:
        out.append(f"- {label}: {r.extra_copies} extra copies at the vendors")
    return out


def settings_line(opts: Options) -> str:
    senders = "one sender number" if opts.twilio_rate <= 1 else f"as {opts.twilio_rate:g} numbers"
    return (
        f"seed {opts.seed}; outbox lease {opts.lease} s (default 120), batch 50, "
        f"backoff max 30 s; Twilio {opts.twilio_rate:g} msg/s ({senders}), "
        f"{opts.twilio_share:.0%} of the messages; SOLAPI unthrottled (no published limit)"
    )


def table(results: list[Result], opts: Options) -> str:
    lines = [HEADER, *(row(r) for r in results), "", settings_line(opts)]
    for r in results:
        lines += details(r)
    return "\n".join(lines)


INTRO = """## Crash harness (bench/crash.py)

`python bench/crash.py --write-results` (or `make crash`): real `dangol serve` processes with the real SOLAPI and Twilio adapters, the fake vendors (tests/fakes) as processes of their own on 127.0.0.1, owner replies and notices enqueued in waves through dangol's own units while a process is killed at random moments (SIGKILL, sometimes SIGTERM) and restarted; after some kills the vendors' lookup endpoints answer 503 while the killed process's rows are reconciled. Counted at the end, per message, by the tag in its text: at the vendors — delivered once, twice or more, never — and in dangol — lost (dangol says sent, no vendor had it), stuck (pending, sending or unknown after quiescence), dead. A dead row is *in doubt* when a process was killed while that row was in its hands (its request may have reached the vendor, the answer died with it); a dead row no kill touched is *wrongly* given up. Target (issue 10): 0 twice, 0 lost, 0 stuck, 0 wrongly given up."""


def write_results(results: list[Result], opts: Options) -> None:
    """Update the `crash` section; a database not run this time keeps its row and notes."""
    old = (sections.get(sections.read(), "crash") or "").splitlines()
    rows: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    for db, label in LABELS.items():
        rows[db] = [line for line in old if line.startswith(f"| {label} |")]
        notes[db] = [line for line in old if line.startswith(f"- {label}")]
    for r in results:
        label = LABELS.get(r.db, r.db)
        stamp = (
            f"- {label}: measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{_commit()}` "
            f"({platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}); {settings_line(opts)}"
        )
        rows[r.db] = [row(r)]
        notes[r.db] = [stamp, *details(r)]
    body = [INTRO, "", HEADER]
    body += [line for db in LABELS for line in rows[db]]
    body.append("")
    body += [line for db in LABELS for line in notes[db]]
    sections.write_section("crash", "\n".join(body))


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=True
        )
        return out.stdout.decode().strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
