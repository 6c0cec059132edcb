"""A `Sheet` checked against the shop's catalogue and today's date: the `Plan` of what will
be imported, and every row that will not be, with why. Pure: no database, no clock.

One row per past job (or per customer, with the service cells left empty). Rows with the
same phone number are one customer: the first row with a name names them, a later row
with another name is refused; a later consent that says otherwise is refused too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time

from core.config.services import ServiceConfig
from core.importing.reading import Cell, FileRefused, Formula, Sheet
from core.phone import PhoneError, to_domestic, to_e164

NAME_MAX = 100
OLDEST = date(1990, 1, 1)

# Each field and the headers that name it, compared without spaces, case or punctuation.
HEADERS: dict[str, tuple[str, ...]] = {
    "name": ("이름", "고객명", "고객이름", "성함", "성명", "name", "customername"),
    "phone": (
        "전화번호", "전화", "휴대폰", "휴대폰번호", "핸드폰", "핸드폰번호", "연락처",
        "phone", "mobile", "phonenumber",
    ),
    "service": ("서비스", "서비스명", "작업", "작업내용", "작업종류", "service"),
    "date": (
        "작업일", "작업일자", "작업날짜", "시공일", "방문일", "날짜", "date", "servicedate",
        "doneon",
    ),
    "last_visit": ("최근방문", "최근방문일", "마지막방문", "마지막방문일", "lastvisit"),
    "consent": (
        "동의", "수신동의", "광고동의", "광고수신동의", "마케팅동의", "consent",
        "marketingconsent",
    ),
    "consent_date": ("동의일", "동의일자", "동의날짜", "consentdate", "consentedon"),
    "consent_source": ("동의경로", "동의방법", "동의출처", "consentsource"),
}  # fmt: skip
REQUIRED = ("name", "phone")
LABELS = {
    "name": "이름",
    "phone": "전화번호",
    "service": "서비스",
    "date": "작업일",
    "last_visit": "최근 방문",
    "consent": "동의",
    "consent_date": "동의일",
    "consent_source": "동의 경로",
}
YES = {"예", "네", "y", "yes", "o", "○", "동의", "true", "1", "수신", "수신동의"}
NO = {"아니오", "아니요", "n", "no", "x", "×", "미동의", "거부", "false", "0", "수신거부"}

_HEADER_NOISE = re.compile(r"[\s_\-()\[\]·./:*]+")
_DATE_TEXT = re.compile(r"(\d{2}|\d{4})\s*[-./년]\s*(\d{1,2})\s*[-./월]\s*(\d{1,2})\s*일?\.?")
_DATE_DIGITS = re.compile(r"\d{8}")


@dataclass(frozen=True)
class Refusal:
    row: int  # as the file numbers it
    code: str
    message: str  # Korean, for the owner


@dataclass(frozen=True)
class Consent:
    granted: bool
    on: date | None  # None: refused with no date given (recorded at the import)
    how: str  # the file's own word on where it was given ("매장 서면", "전화")
    row: int


@dataclass(frozen=True)
class PastJob:
    service: str  # the catalogue's key
    on: date
    row: int


@dataclass
class Person:
    """One customer of the file, by phone number."""

    phone: str  # E.164
    name: str | None
    first_row: int
    consent: Consent | None = None
    jobs: list[PastJob] = field(default_factory=list)


@dataclass(frozen=True)
class Line:
    """A row as it will be imported, for the preview."""

    row: int
    name: str | None
    phone: str  # domestic, as people write it
    service: str | None  # the catalogue's name
    on: date | None
    consent: Consent | None


@dataclass
class Plan:
    rows: int  # data rows read
    people: list[Person]
    lines: list[Line]
    refusals: list[Refusal]
    ignored_headers: list[str]

    @property
    def accepted(self) -> int:
        return len(self.lines)

    @property
    def jobs(self) -> int:
        return sum(len(p.jobs) for p in self.people)

    @property
    def consents(self) -> int:
        return sum(p.consent is not None for p in self.people)

    def digest(self) -> str:
        """What the owner saw in the preview, in 16 hex digits: confirm imports it only
        when the plan made again from the stored file is still the same."""
        h = hashlib.sha256()
        for p in self.people:
            c = p.consent
            h.update(f"{p.phone}|{p.name}|{c and (c.granted, c.on, c.how)}".encode())
            for j in p.jobs:
                h.update(f"|{j.service}@{j.on}".encode())
        h.update(f"#{len(self.refusals)}".encode())
        return h.hexdigest()[:16]


def _norm_header(value: Cell) -> str:
    return _HEADER_NOISE.sub("", str(value)).lower() if isinstance(value, str) else ""


_BY_HEADER = {alias: name for name, aliases in HEADERS.items() for alias in aliases}


def find_columns(sheet: Sheet) -> tuple[int, dict[str, int], list[str]]:
    """The header row's index in `sheet.rows`, each field's column, and headers not read."""
    for index, row in enumerate(sheet.rows[:10]):
        columns: dict[str, int] = {}
        for col, cell in enumerate(row):
            name = _BY_HEADER.get(_norm_header(cell))
            if name is not None and name not in columns:
                columns[name] = col
        if all(r in columns for r in REQUIRED):
            ignored = [
                str(c).strip()
                for i, c in enumerate(row)
                if isinstance(c, str) and c.strip() and i not in columns.values()
            ]
            return index, columns, ignored
    # Say which of the two the owner's header lacks, from the row that looks most like one.
    best: set[str] = set()
    for row in sheet.rows[:10]:
        found = {_BY_HEADER[h] for h in map(_norm_header, row) if h in _BY_HEADER}
        if len(found) > len(best):
            best = found
    missing = ", ".join(LABELS[r] for r in REQUIRED if r not in best)
    raise FileRefused(
        "missing_columns",
        f"필요한 열이 없어요: {missing}. 첫 줄에 ‘이름’, ‘전화번호’ 같은 제목을 적어 주세요 "
        "(서비스, 작업일, 동의, 동의일은 있으면 함께 가져와요).",
    )


def plan_import(sheet: Sheet, services: Sequence[ServiceConfig], today: date) -> Plan:
    """Every data row accepted into the plan or refused with its reason."""
    header, columns, ignored = find_columns(sheet)
    catalogue = _catalogue(services)
    names = {s.key: s.name for s in services}
    people: dict[str, Person] = {}
    seen_jobs: dict[tuple[str, str, date], int] = {}
    lines: list[Line] = []
    refusals: list[Refusal] = []
    data = list(zip(sheet.numbers[header + 1 :], sheet.rows[header + 1 :], strict=True))
    for number, row in data:
        problem = _row_problem(number, row, columns, catalogue, today)
        if isinstance(problem, Refusal):
            refusals.append(problem)
            continue
        phone, name, job, consent = problem
        person = people.get(phone)
        if person is not None:
            if name and person.name and name != person.name:
                refusals.append(
                    _refuse(
                        number,
                        "name_conflict",
                        f"같은 번호에 다른 이름이에요({person.first_row}행: {person.name}).",
                    )
                )
                continue
            if consent and person.consent and _differs(consent, person.consent):
                refusals.append(
                    _refuse(
                        number,
                        "consent_conflict",
                        f"같은 번호의 동의 내용이 {person.consent.row}행과 달라요.",
                    )
                )
                continue
        if job is not None:
            earlier = seen_jobs.get((phone, job.service, job.on))
            if earlier is not None:
                refusals.append(
                    _refuse(number, "duplicate", f"{earlier}행과 같은 작업이에요(파일 안 중복).")
                )
                continue
            seen_jobs[(phone, job.service, job.on)] = number
        if person is None:
            person = people[phone] = Person(phone, name, number)
        elif name and not person.name:
            person.name = name
        if consent and person.consent is None:
            person.consent = consent
        if job is not None:
            person.jobs.append(job)
        lines.append(
            Line(
                number,
                name or person.name,
                to_domestic(phone),
                names[job.service] if job else None,
                job.on if job else None,
                consent,
            )
        )
    return Plan(len(data), list(people.values()), lines, refusals, ignored)


def _differs(a: Consent, b: Consent) -> bool:
    return (a.granted, a.on) != (b.granted, b.on)


def _refuse(row: int, code: str, message: str) -> Refusal:
    return Refusal(row, code, message)


def _catalogue(services: Sequence[ServiceConfig]) -> dict[str, str]:
    found: dict[str, str] = {}
    for s in services:
        found.setdefault(_norm_header(s.name), s.key)
    for s in services:
        found[s.key.lower()] = s.key
    return found


def _column_letter(col: int) -> str:
    letters = ""
    col += 1
    while col:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _row_problem(
    number: int,
    row: list[Cell],
    columns: dict[str, int],
    catalogue: dict[str, str],
    today: date,
) -> Refusal | tuple[str, str | None, PastJob | None, Consent | None]:
    """The row's customer, job and consent, or the first thing wrong with it."""
    for field_name, col in columns.items():
        value = row[col] if col < len(row) else None
        if isinstance(value, Formula):
            where = f"{_column_letter(col)}{number}"
            return _refuse(
                number,
                "formula",
                f"{LABELS[field_name]} 칸({where})이 수식이에요. 수식은 계산하지 않아요: "
                "값으로 붙여 넣어 저장한 뒤 올려 주세요.",
            )
    get = columns.get

    def at(name: str) -> Cell:
        col = get(name)
        return row[col] if col is not None and col < len(row) else None

    raw_phone = at("phone")
    phone_text = _phone_text(raw_phone)
    if not phone_text:
        return _refuse(number, "phone_missing", "전화번호가 없어요.")
    try:
        phone = to_e164(phone_text)
    except PhoneError:
        return _refuse(number, "phone_bad", f"전화번호 형식이 아니에요: {phone_text}")
    name = " ".join(_text(at("name")).split()) or None
    if name and len(name) > NAME_MAX:
        return _refuse(number, "name_too_long", f"이름이 너무 길어요({NAME_MAX}자까지).")

    job: PastJob | None = None
    service_text = _text(at("service")).strip()
    done = at("date")
    if _blank(done):
        done = at("last_visit")
    if service_text:
        key = catalogue.get(_norm_header(service_text)) or catalogue.get(service_text.lower())
        if key is None:
            return _refuse(
                number, "service_unknown", f"가게의 서비스 목록에 없는 서비스예요: {service_text}"
            )
        if _blank(done):
            return _refuse(number, "date_missing", "작업일이 없어요.")
        on = _date(done)
        if on is None:
            return _refuse(number, "date_bad", f"작업일이 날짜가 아니에요: {_text(done)}")
        if on > today:
            return _refuse(number, "date_future", f"작업일이 오늘 이후예요: {on.isoformat()}")
        if on < OLDEST:
            return _refuse(number, "date_bad", f"작업일이 너무 오래됐어요: {on.isoformat()}")
        job = PastJob(key, on, number)
    elif not _blank(at("date")):
        return _refuse(number, "service_missing", "작업일은 있는데 서비스가 없어요.")

    consent: Consent | None = None
    said = _text(at("consent")).strip().lower().replace(" ", "")
    if said:
        if said in YES:
            granted = True
        elif said in NO:
            granted = False
        else:
            return _refuse(
                number, "consent_bad", f"동의 칸을 알 수 없어요: {_text(at('consent'))} (예/아니오)"
            )
        when = at("consent_date")
        on_consent: date | None = None
        if _blank(when):
            if granted:
                return _refuse(number, "consent_date_missing", "동의했다면 동의일이 필요해요.")
        else:
            parsed = _date(when)
            if parsed is None:
                return _refuse(
                    number, "consent_date_bad", f"동의일이 날짜가 아니에요: {_text(when)}"
                )
            if parsed > today:
                return _refuse(
                    number, "consent_date_future", f"동의일이 오늘 이후예요: {parsed.isoformat()}"
                )
            on_consent = parsed
        how = " ".join(_text(at("consent_source")).split())[:60]
        consent = Consent(granted, on_consent, how, number)
    elif not _blank(at("consent_date")):
        return _refuse(number, "consent_bad", "동의일은 있는데 동의 칸이 비어 있어요(예/아니오).")
    return phone, name, job, consent


def _blank(value: Cell) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Cell) -> str:
    if value is None or isinstance(value, Formula):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _phone_text(value: Cell) -> str:
    """Excel keeps 010-1234-5678 typed without dashes as the number 1012345678: the
    leading zero is lost, and put back for a Korean number."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        digits = _text(value)
        return "0" + digits if len(digits) in (9, 10) and digits[0] != "0" else digits
    return _text(value).strip()


def _date(value: Cell) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, time | bool | float | int) or value is None:
        return _excel_serial(value)
    text = str(value).strip()
    found = _DATE_TEXT.fullmatch(text)
    if found:
        year, month, day = (int(g) for g in found.groups())
        if year < 100:
            year += 2000
    elif text.isdigit() and len(text) == 5:
        return _excel_serial(int(text))
    elif _DATE_DIGITS.fullmatch(text):
        year, month, day = int(text[:4]), int(text[4:6]), int(text[6:])
    else:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _excel_serial(value: Cell) -> date | None:
    """A date a CSV or an untyped cell left as Excel's day number (45000 → 2023-03-15)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 20_000 <= value <= 80_000:
        return None
    return date.fromordinal(date(1899, 12, 30).toordinal() + int(value))
