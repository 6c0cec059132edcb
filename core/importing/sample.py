"""The import format shown by example: docs/import-sample.xlsx and .csv are written from
`SAMPLE` (`python -m core.importing.sample docs`), and a test holds the files to it. The
benchmark writes its large lists with the same functions.

One row per past job; a customer with several jobs has several rows (same 전화번호), and a
row with the service cells empty adds the customer alone.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

COLUMNS = ("이름", "전화번호", "서비스", "작업일", "동의", "동의일", "동의 경로")

# Services of config.example.toml, by key and by name (either is accepted).
SAMPLE: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    ("김단골", "010-1234-5678", "aircon", "2025-06-14", "예", "2024-03-02", "매장 서면"),
    ("김단골", "010-1234-5678", "에어컨 청소·수리", "2024-07-01", "", "", ""),
    ("이보일러", "010-9876-1111", "electric", "2025-01-20", "아니오", "2025-01-20", "전화"),
    ("박정원", "010-5555-0202", "landscape", "2025-04-05", "", "", ""),
    ("최새댁", "010-3333-4444", "", "", "예", "2025-09-10", "네이버 예약"),
)


def write_csv(rows: Iterable[Sequence[object]], *, encoding: str = "utf-8-sig") -> bytes:
    """A CSV as Excel writes it: UTF-8 with BOM by default (`encoding="cp949"` for the
    older "CSV (쉼표로 분리)"), CRLF line ends."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue().encode(encoding)


def write_xlsx(rows: Iterable[Sequence[object]]) -> bytes:
    """An .xlsx with the header and `rows`; ISO date strings become real date cells."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("고객")
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append([_cell(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value if value != "" else None


def write_samples(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    xlsx, csv_path = folder / "import-sample.xlsx", folder / "import-sample.csv"
    xlsx.write_bytes(write_xlsx(SAMPLE))
    csv_path.write_bytes(write_csv(SAMPLE))
    return [xlsx, csv_path]


if __name__ == "__main__":  # pragma: no cover
    for path in write_samples(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(path)
