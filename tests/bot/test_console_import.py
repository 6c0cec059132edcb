"""고객 → 목록 가져오기 through the real app: upload → preview → import, the owner only,
CSRF, a file too large refused before it is read, a file that is not a list refused in
Korean, and a preview that can only be confirmed as it was (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from support.console import Client, add_account, rows, sign_in

from core.importing.sample import write_csv, write_xlsx
from core.models import AuditEntry, Consent, Customer, Job

pytestmark = pytest.mark.usefixtures("cheap_hasher")

LIST = [
    ("김단골", "010-1234-5678", "aircon", "2025-06-14", "예", "2024-03-02", "매장 서면"),
    ("김단골", "010-1234-5678", "잔디 관리", "2024-07-01", "", "", ""),
    ("<b>이보일러</b>", "010-9876-1111", "aircon", "2025-01-20", "", "", ""),
    ("틀린번호", "123", "", "", "", "", ""),
    ("보일러손님", "010-2222-0001", "보일러", "2025-01-20", "", "", ""),
]
PREVIEW = re.compile(r"^/console/customers/import/([A-Za-z0-9_-]{32})$")


@pytest.fixture
async def app_client(make_client: Callable[..., Awaitable[Client]], tmp_path: Path) -> Client:
    client = await make_client(storage={"path": str(tmp_path), "max_upload_bytes": 200 * 1024})
    await add_account(client)
    client.csrf = await sign_in(client)  # type: ignore[attr-defined]
    return client


def form_of(data: bytes, name: str, csrf: str | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    return form


async def upload(
    client: Client, data: bytes, name: str = "단골.xlsx", *, script: bool = True
) -> aiohttp.ClientResponse:
    csrf: str = client.csrf  # type: ignore[attr-defined]
    if script:  # as import.js sends it: the token in the header, streamed, JSON back
        return await client.post(
            "/console/customers/import",
            data=form_of(data, name),
            headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
        )
    return await client.post(
        "/console/customers/import", data=form_of(data, name, csrf), allow_redirects=False
    )


async def test_upload_preview_and_import_then_a_rerun_adds_nothing(app_client: Client) -> None:
    client = app_client
    resp = await upload(client, write_xlsx(LIST))
    assert resp.status == 201, await resp.text()
    location = (await resp.json())["location"]
    assert PREVIEW.match(location)

    page = await client.get(location)
    assert page.status == 200
    html = await page.text()
    assert 'id="count-accepted">3<' in html
    assert 'id="count-refused">2<' in html
    assert 'id="count-new">2<' in html
    assert 'data-row="5" data-code="phone_bad"' in html
    assert 'data-row="6" data-code="service_unknown"' in html
    assert "&lt;b&gt;이보일러&lt;/b&gt;" in html  # the file's text is escaped
    assert "<b>이보일러" not in html
    digest = re.search(r'name="plan" value="([0-9a-f]{16})"', html)
    assert digest

    done = await client.post(
        location,
        data={"csrf": client.csrf, "plan": digest.group(1)},  # type: ignore[attr-defined]
    )
    assert done.status == 200
    assert "새 고객 2명" in await done.text()
    assert len(await rows(client, sa.select(Customer.id))) == 2
    jobs = await rows(client, sa.select(Job.service, Job.status, Job.source))
    assert sorted(jobs) == [
        ("aircon", "done", "import"),
        ("aircon", "done", "import"),
        ("lawn", "done", "import"),
    ]
    consents = await rows(client, sa.select(Consent.source, Consent.granted))
    assert consents == [("import:단골.xlsx", True)]
    audit = await rows(
        client,
        sa.select(AuditEntry.actor, AuditEntry.detail).where(
            AuditEntry.action == "customers_imported"
        ),
    )
    assert audit[0].actor.startswith("user:")
    assert audit[0].detail["jobs_added"] == 3

    # The same id cannot be imported twice; the same file again adds nothing.
    assert (
        await client.post(location, data={"csrf": client.csrf, "plan": digest.group(1)})
    ).status == 404  # type: ignore[attr-defined]
    again = await upload(client, write_xlsx(LIST))
    page = await client.get((await again.json())["location"])
    html = await page.text()
    assert 'id="count-new">0<' in html
    assert 'id="count-jobs">0' in html


async def test_without_the_script_the_form_posts_and_redirects(app_client: Client) -> None:
    resp = await upload(app_client, write_csv(LIST, encoding="cp949"), "list.csv", script=False)
    assert resp.status == 303
    assert PREVIEW.match(resp.headers["Location"])
    page = await app_client.get(resp.headers["Location"])
    assert 'id="count-accepted">3<' in await page.text()


async def test_a_changed_plan_is_shown_again_not_imported(app_client: Client) -> None:
    resp = await upload(app_client, write_xlsx(LIST))
    location = (await resp.json())["location"]
    answer = await app_client.post(location, data={"csrf": app_client.csrf, "plan": "0" * 16})  # type: ignore[attr-defined]
    assert answer.status == 409
    assert "다시 확인해 주세요" in await answer.text()
    assert await rows(app_client, sa.select(Customer.id)) == []


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 400, "빈 파일"),
        (b"\x89PNG\r\n\x1a\n" + bytes(300), 415, "스프레드시트 파일이 아니에요"),
        ("이름,주소\r\n김,서울\r\n".encode(), 400, "필요한 열이 없어요"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), 400, ".xls"),
    ],
)
async def test_a_file_that_is_not_a_list_is_refused_in_korean(
    app_client: Client, data: bytes, status: int, words: str
) -> None:
    resp = await upload(app_client, data, "x.csv")
    assert resp.status == status
    assert words in (await resp.json())["message"]
    page = await upload(app_client, data, "x.csv", script=False)
    assert page.status == status
    assert words in await page.text()


async def test_a_file_past_the_limit_is_refused_before_it_is_read(app_client: Client) -> None:
    head = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
    body = head + b"x" * (50 * 1024 * 1024) + b"\r\n--x--\r\n"
    resp = await app_client.post(
        "/console/customers/import",
        data=io.BytesIO(body),
        headers={
            "Content-Length": str(len(body)),
            "X-CSRF-Token": app_client.csrf,  # type: ignore[attr-defined]
            "Accept": "application/json",
            "Content-Type": "multipart/form-data; boundary=x",
        },
    )
    assert resp.status == 413
    assert "너무 커요" in (await resp.json())["message"]

    # Sent without a length (chunked), it is counted as it arrives.
    async def chunks() -> Any:
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        for _ in range(100):
            yield b"y" * (64 * 1024)
        yield b"\r\n--x--\r\n"

    resp = await app_client.post(
        "/console/customers/import",
        data=chunks(),
        headers={
            "X-CSRF-Token": app_client.csrf,  # type: ignore[attr-defined]
            "Accept": "application/json",
            "Content-Type": "multipart/form-data; boundary=x",
        },
    )
    assert resp.status == 413, await resp.text()


async def test_staff_get_403_and_a_post_without_csrf_is_refused(app_client: Client) -> None:
    client = app_client
    no_token = await client.post(
        "/console/customers/import", data=form_of(write_csv(LIST), "a.csv"), allow_redirects=False
    )
    assert no_token.status == 403
    good = await upload(client, write_csv(LIST), "a.csv")
    location = (await good.json())["location"]
    assert (await client.post(location, data={"plan": "x"})).status == 403

    await add_account(client, "staff1", role="staff")
    client.csrf = await sign_in(client, "staff1")  # type: ignore[attr-defined]
    assert (await client.get("/console/customers/import")).status == 403
    assert (await upload(client, write_csv(LIST), "a.csv")).status == 403
    assert (await client.get(location)).status == 403
    listing = await client.get("/console/customers")
    assert "/console/customers/import" not in await listing.text()
    assert await rows(client, sa.select(Customer.id)) == []


async def test_another_shops_owner_cannot_open_the_preview(
    make_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    from conftest import shop_table

    client = await make_client(
        storage={"path": str(tmp_path)},
        shops=[
            shop_table(),
            shop_table(
                slug="other",
                name="다른가게",
                kakao={
                    "bot_id": "66a1e9d0e4b0a1b2c3d4e001",
                    "skill_secret_env": "DANGOL_TEST_SKILL_SECRET",
                },
            ),
        ],
    )
    await add_account(client)
    await add_account(client, "other", shop="other")
    client.csrf = await sign_in(client)  # type: ignore[attr-defined]
    location = (await (await upload(client, write_csv(LIST), "a.csv")).json())["location"]
    client.csrf = await sign_in(client, "other")  # type: ignore[attr-defined]
    assert (await client.get(location)).status == 404
