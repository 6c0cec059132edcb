"""A customer list as the shop keeps it — an .xlsx workbook or a CSV file — read into a
`Sheet`: its header row and the cells under it, nothing interpreted yet.

What is not a list is refused here with a Korean message (`FileRefused`): another kind of
file, the old binary .xls, an empty file, a CSV whose encoding is neither UTF-8 (with or
without BOM) nor CP949 (Korean Excel's "CSV"), a file with more than `MAX_ROWS` rows.
Encodings are tried strictly — UTF-8 first, then CP949 — and a file that is valid in
neither (two encodings mixed in one file, say) is refused rather than read half wrong.

Formula cells are never evaluated: openpyxl reads the formula's text (not its cached
result), and the cell becomes a `Formula`, which validation refuses with its row. A CSV
cell that starts with "=" is a formula too (Excel would run it when the file is opened).
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Union

MAX_ROWS = 50_000  # data rows; a shop's whole list fits many times over
MAX_COLUMNS = 60
MAX_CELL = 500  # characters kept of a cell: a name, a number, a date never need more
HEADER_SEARCH = 10  # the header may sit under a title row or two

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # .xls (and .doc, .hwp …): the old binary Office files


@dataclass(frozen=True, slots=True)
class Formula:
    """A cell holding a formula; `text` as written ("=HYPERLINK(…)"), never evaluated."""

    text: str


Cell = Union[str, int, float, bool, datetime, date, time, Formula, None]  # noqa: UP007


@dataclass(frozen=True)
class Sheet:
    """The rows of a list: `rows[i]` is the file's row `numbers[i]` (1-based, as Excel shows)."""

    kind: str  # xlsx | csv
    encoding: str | None  # csv only: utf-8 | utf-8-sig | cp949
    rows: list[list[Cell]]
    numbers: list[int]


class FileRefused(ValueError):
    """The whole file cannot be read; `message` says why, in Korean, for the owner."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


def too_large(limit: int) -> FileRefused:
    mb = limit / (1024 * 1024)
    return FileRefused("too_large", f"파일이 너무 커요. {mb:g}MB까지 올릴 수 있어요.")


def read_sheet(data: bytes) -> Sheet:
    """The file's rows, whatever of the two kinds it is (told by its bytes, not its name)."""
    if not data.strip():
        raise FileRefused("empty", "빈 파일이에요. 고객 목록이 든 파일을 올려 주세요.")
    if data.startswith(ZIP_MAGIC):
        return _read_xlsx(data)
    if data.startswith(OLE_MAGIC):
        raise FileRefused(
            "old_excel",
            "예전 Excel 형식(.xls)은 읽을 수 없어요. Excel에서 ‘다른 이름으로 저장’ → "
            "‘Excel 통합 문서(.xlsx)’나 ‘CSV’로 저장해서 올려 주세요.",
        )
    return _read_csv(data)


def _not_a_sheet() -> FileRefused:
    return FileRefused(
        "not_a_sheet", "스프레드시트 파일이 아니에요. Excel(.xlsx)이나 CSV 파일을 올려 주세요."
    )


def _read_xlsx(data: bytes) -> Sheet:
    # Imported here: openpyxl takes a while to load and only this path needs it.
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "xl/workbook.xml" not in archive.namelist():
                raise _not_a_sheet()  # a zip, a .docx, a .hwpx … but no workbook
        # read_only streams the sheet; data_only=False keeps formulas as their text, so a
        # formula is seen (and refused), never its cached result taken as a value.
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except FileRefused:
        raise
    except Exception:  # a broken zip or workbook: openpyxl raises many kinds
        raise FileRefused(
            "broken", "파일을 열 수 없어요. Excel에서 다시 저장한 뒤 올려 주세요."
        ) from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise _not_a_sheet()
        rows: list[list[Cell]] = []
        numbers: list[int] = []
        for number, cells in enumerate(sheet.iter_rows(max_col=MAX_COLUMNS), start=1):
            values: list[Cell] = []
            for cell in cells:
                value = getattr(cell, "value", None)
                if getattr(cell, "data_type", None) == "f" or (
                    isinstance(value, str) and value.startswith("=")
                ):
                    values.append(Formula(str(value)[:MAX_CELL]))
                elif isinstance(value, str):
                    values.append(value[:MAX_CELL])
                else:
                    values.append(value)
            if not any(_filled(v) for v in values):
                continue
            if len(rows) > MAX_ROWS:
                raise _too_many_rows()
            rows.append(values)
            numbers.append(number)
    finally:
        book.close()
    if not rows:
        raise FileRefused("empty", "빈 파일이에요. 첫 번째 시트에 고객 목록이 없어요.")
    return Sheet("xlsx", None, rows, numbers)


def _too_many_rows() -> FileRefused:
    return FileRefused(
        "too_many_rows", f"행이 너무 많아요. 한 번에 {MAX_ROWS:,}행까지 가져올 수 있어요."
    )


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"  # Excel's "유니코드 텍스트"
    else:
        encoding = ""
    candidates = [encoding] if encoding else ["utf-8", "cp949"]
    for candidate in candidates:
        try:
            return data.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    raise FileRefused(
        "encoding",
        "파일의 글자 인코딩을 알 수 없어요(UTF-8도 CP949도 아니거나 섞여 있어요). "
        "Excel에서 ‘CSV UTF-8(쉼표로 분리)’로 다시 저장해서 올려 주세요.",
    )


def _read_csv(data: bytes) -> Sheet:
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _not_a_sheet()  # binary: an image, a PDF, an archive
    text, encoding = _decode(data)
    if any(ch in text[:4096] for ch in "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f"):
        raise _not_a_sheet()
    sample = text[:8192]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    rows: list[list[Cell]] = []
    numbers: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for record in reader:
            if not any(v.strip() for v in record):
                continue
            if len(rows) > MAX_ROWS:
                raise _too_many_rows()
            values: list[Cell] = [
                Formula(v[:MAX_CELL]) if v.lstrip().startswith("=") else v[:MAX_CELL]
                for v in record[:MAX_COLUMNS]
            ]
            rows.append(values)
            numbers.append(reader.line_num)
    except csv.Error:
        raise _not_a_sheet() from None
    if not rows:
        raise FileRefused("empty", "빈 파일이에요. 고객 목록이 든 파일을 올려 주세요.")
    if len(rows[0]) < 2 and all(len(r) < 2 for r in rows[:HEADER_SEARCH]):
        raise FileRefused(
            "not_a_sheet",
            "표로 읽을 수 없어요. 쉼표(,)로 나눈 CSV나 Excel(.xlsx) 파일을 올려 주세요.",
        )
    return Sheet("csv", encoding, rows, numbers)


def _filled(value: Cell) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())
