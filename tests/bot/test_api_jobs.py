"""The jobs API through the real app: tokens, one shop's jobs only, booking (planned
journey, customer by phone, consent only when said), retries, changes and the list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Client, shop_table
from support.api import bearer, booking, make_token, revoke_token
from support.console import app_of, rows, shop_id
from support.settle import settled

from bot import keys
from core.jobs import complete
from core.models import (
    ApiToken,
    AuditEntry,
    Consent,
    Customer,
    CustomerIdentity,
    Job,
    JourneyStep,
)

MakeClient = Callable[..., Awaitable[Client]]


async def post(client: Client, token: str, path: str, body: Any) -> tuple[int, Any]:
    resp = await client.post(path, json=body, headers=bearer(token))
    return resp.status, await resp.json()


async def get(client: Client, token: str, path: str, **params: Any) -> tuple[int, Any]:
    resp = await client.get(path, params=params, headers=bearer(token))
    return resp.status, await resp.json()


async def count(client: Client, model: Any) -> int:
    return len(await rows(client, sa.select(model.id)))


# --------------------------------------------------------------------------- the token


async def test_without_a_valid_api_token_every_path_is_401_with_a_bearer_challenge(
    client: Client,
) -> None:
    calendar = await make_token(client, "calendar")
    revoked = await make_token(client)
    await revoke_token(client, revoked)
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic a2ltOnB3"},
        {"Authorization": "Bearer dgl_" + "x" * 43},  # the shape, but no such token
        bearer(calendar),  # the calendar's token reaches the calendar only
        bearer(revoked),
    ]
    for headers in attempts:
        for method, path in (
            ("GET", "/api/jobs"),
            ("POST", "/api/jobs"),
            ("GET", "/api/jobs/1"),
            ("GET", "/api/services"),
            ("GET", "/api/nothing-here"),
        ):
            resp = await client.request(method, path, headers=headers)
            assert resp.status == 401, (headers, path)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await resp.json())["error"] == "unauthorized"
    # The document is public: a caller reads it before it has a token.
    assert (await client.get("/api/openapi.json")).status == 200
    assert await count(client, Job) == 0


async def test_a_token_is_revoked_at_once(client: Client) -> None:
    token = await make_token(client)
    assert (await client.get("/api/jobs", headers=bearer(token))).status == 200
    await revoke_token(client, token)
    assert (await client.get("/api/jobs", headers=bearer(token))).status == 401


async def test_one_shops_token_never_reaches_another_shops_jobs(make_client: MakeClient) -> None:
    other = shop_table(
        slug="saebom",
        name="새봄조경",
        kakao={
            "bot_id": "66a1e9d0e4b0a1b2c3d4e999",
            "skill_secret_env": "DANGOL_TEST_SKILL_SECRET",
        },
    )
    client = await make_client(shops=[shop_table(), other])
    ours = await make_token(client)
    theirs = await make_token(client, shop="saebom")
    status, job = await post(client, ours, "/api/jobs", booking(external_ref="b-1"))
    assert status == 201
    path = f"/api/jobs/{job['id']}"

    for method, url, body in (
        ("GET", path, None),
        ("PATCH", path, {"notes": "남의 작업"}),
        (
            "POST",
            f"{path}/reschedule",
            {"starts_at": "2026-11-27T10:00:00+09:00", "ends_at": "2026-11-27T12:00:00+09:00"},
        ),
        ("POST", f"{path}/cancel", {}),
    ):
        resp = await client.request(method, url, json=body, headers=bearer(theirs))
        assert resp.status == 404, (method, url)
        assert (await resp.json())["error"] == "not_found"
    status, listed = await get(client, theirs, "/api/jobs")
    assert listed["jobs"] == []
    # The same external_ref in another shop is another booking, for another customer.
    status, their_job = await post(
        client, theirs, "/api/jobs", booking(external_ref="b-1", service="lawn")
    )
    assert status == 201
    assert their_job["id"] != job["id"]
    assert their_job["customer"]["id"] != job["customer"]["id"]
    # And nothing of ours changed.
    status, again = await get(client, ours, path)
    assert again["status"] == "booked"
    assert again["notes"] == "실외기 베란다"
    assert again["revision"] == 1


# --------------------------------------------------------------------------- booking


async def test_booking_plans_the_journey_and_adds_the_customer_by_phone(client: Client) -> None:
    token = await make_token(client)
    resp = await client.post("/api/jobs", json=booking(), headers=bearer(token))
    assert resp.status == 201, await resp.text()
    job = await resp.json()
    assert resp.headers["Location"] == f"/api/jobs/{job['id']}"
    assert job["status"] == "booked"
    assert job["status_label"] == "예약"
    assert job["service_name"] == "에어컨 청소"
    assert job["source"] == "api"
    assert job["starts_at"] == "2026-11-26T14:00:00+09:00"
    assert job["price_krw"] == 80000
    assert job["customer"]["name"] == "김민수"
    assert job["console_url"] == f"http://127.0.0.1:8080/console/jobs/{job['id']}"
    steps = {s["key"]: s for s in job["journey"]}
    assert set(steps) == {"confirmation:r1", "reminder:r1"}
    assert steps["confirmation:r1"]["due_at"] == "2026-11-23T10:00:00+09:00"  # now
    assert steps["reminder:r1"]["due_at"] == "2026-11-25T18:00:00+09:00"  # the evening before
    assert steps["reminder:r1"]["status"] == "planned"
    # Once the journey planner (woken by the booking) has run: this shop has no SMS
    # provider, so the confirmation is skipped with that reason.
    await settled(app_of(client))
    _, later = await get(client, token, f"/api/jobs/{job['id']}")
    confirmation = {s["key"]: s for s in later["journey"]}["confirmation:r1"]
    assert (confirmation["status"], confirmation["reason"]) == (
        "skipped",
        "이 고객에게 보낼 경로가 설정되지 않았어요 (sms)",
    )

    phones = await rows(client, sa.select(CustomerIdentity.kind, CustomerIdentity.value))
    assert phones == [("phone", "+821055556666")]
    assert await count(client, Consent) == 0  # none said, none recorded
    audit = dict(await rows(client, sa.select(AuditEntry.action, AuditEntry.actor)))
    assert audit["job_booked"] == audit["customer_added"]
    assert audit["job_booked"].startswith("api_token:")

    # The same number written another way is the same customer; the shop's name for
    # them stays.
    second = booking(
        customer={"phone": "+82 10 5555 6666", "name": "김민수 고객"},
        starts_at="2026-12-03T09:00:00+09:00",
        ends_at="2026-12-03T11:00:00+09:00",
    )
    status, again = await post(client, token, "/api/jobs", second)
    assert status == 201
    assert again["customer"] == job["customer"]
    assert await count(client, Customer) == 1


async def test_marketing_consent_is_recorded_only_when_the_request_says_so_with_its_source(
    client: Client,
) -> None:
    token = await make_token(client)
    body = booking(
        customer={
            "phone": "010-7777-8888",
            "name": "이서연",
            "marketing_consent": {"source": "예약 페이지 동의 체크", "night": True},
        }
    )
    status, job = await post(client, token, "/api/jobs", body)
    assert status == 201
    consents = await rows(
        client, sa.select(Consent.customer_id, Consent.scope, Consent.granted, Consent.source)
    )
    assert sorted(consents) == [
        (job["customer"]["id"], "marketing", True, "api:예약 페이지 동의 체크"),
        (job["customer"]["id"], "night", True, "api:예약 페이지 동의 체크"),
    ]
    granted = await rows(
        client, sa.select(AuditEntry.id).where(AuditEntry.action == "consent_granted")
    )
    assert len(granted) == 2


async def test_a_retried_booking_with_the_same_external_ref_is_the_same_job(client: Client) -> None:
    token = await make_token(client)
    body = booking(
        external_ref="booking-1042",
        customer={
            "phone": "010-5555-6666",
            "name": "김민수",
            "marketing_consent": {"source": "checkbox"},
        },
    )
    status, first = await post(client, token, "/api/jobs", body)
    assert status == 201
    status, second = await post(client, token, "/api/jobs", body)
    assert status == 200
    assert second["id"] == first["id"]
    # The same steps (the journey planner may have settled one in between: not planned twice).
    assert [s["key"] for s in second["journey"]] == [s["key"] for s in first["journey"]]
    assert await count(client, Job) == 1
    assert await count(client, Customer) == 1
    assert await count(client, Consent) == 1  # the retry recorded nothing again
    assert await count(client, JourneyStep) == 2


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[]", 422, "invalid"),
        (booking(service=None), 422, "invalid"),
        (booking(price_krw="80000"), 422, "invalid"),  # strict: a number is a number
        (booking(price_krw=-1), 422, "invalid"),
        (booking(surprise=1), 422, "invalid"),
        (booking(starts_at="2026-11-26T14:00:00"), 422, "invalid"),  # no offset
        (booking(starts_at="0001-01-01T00:00:00+09:00"), 422, "invalid"),
        (booking(customer={"phone": "12", "name": "김민수"}), 422, "invalid"),
        (booking(customer={"phone": "010-5555-6666", "name": "   "}), 422, "invalid"),
        (
            booking(customer={"phone": "010-5555-6666", "name": "김", "marketing_consent": {}}),
            422,
            "invalid",
        ),
        (booking(service="plumbing"), 422, "rejected"),
        (booking(ends_at="2026-11-26T13:00:00+09:00"), 422, "rejected"),
        (booking(ends_at="2026-11-28T16:00:00+09:00"), 422, "rejected"),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_nothing_is_stored(
    client: Client, body: Any, status: int, error: str
) -> None:
    token = await make_token(client)
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    resp = await client.post("/api/jobs", headers=bearer(token), **kwargs)
    assert resp.status == status, await resp.text()
    answer = await resp.json()
    assert answer["error"] == error
    assert answer["message"]
    if error == "invalid" and status == 422 and isinstance(body, dict):
        assert answer["details"], answer
    for model in (Job, Customer, CustomerIdentity, Consent, JourneyStep):
        assert await count(client, model) == 0
    assert "5555" not in await resp.text()  # the phone number is never echoed


async def test_a_rejected_booking_says_why_in_korean(client: Client) -> None:
    token = await make_token(client)
    status, answer = await post(client, token, "/api/jobs", booking(service="plumbing"))
    assert status == 422
    assert "서비스 목록에 없는 서비스" in answer["message"]


# --------------------------------------------------------------------------- changes


async def _booked(client: Client, token: str, **overrides: Any) -> dict[str, Any]:
    status, job = await post(client, token, "/api/jobs", booking(**overrides))
    assert status == 201, job
    return job  # type: ignore[no-any-return]


async def test_reschedule_replans_the_reminder(client: Client) -> None:
    token = await make_token(client)
    job = await _booked(client, token)
    new = {"starts_at": "2026-11-28T10:00:00+09:00", "ends_at": "2026-11-28T12:00:00+09:00"}
    status, moved = await post(client, token, f"/api/jobs/{job['id']}/reschedule", new)
    assert status == 200, moved
    assert moved["revision"] == 2
    assert moved["starts_at"] == new["starts_at"]
    steps = {s["key"]: s for s in moved["journey"]}
    assert steps["reminder:r1"]["status"] == "cancelled"
    assert steps["reminder:r1"]["reason"] == "일정이 바뀌었어요"
    assert "confirmation:r2" in steps  # a new confirmation, planned at once
    assert steps["reminder:r2"]["due_at"] == "2026-11-27T18:00:00+09:00"
    # Once the journey planner has run: this shop has no SMS provider, so it is skipped.
    await settled(app_of(client))
    status, now_job = await get(client, token, f"/api/jobs/{job['id']}")
    states = {s["key"]: s["status"] for s in now_job["journey"]}
    assert (states["confirmation:r2"], states["reminder:r2"]) == ("skipped", "planned")
    # The same time again changes nothing.
    status, same = await post(client, token, f"/api/jobs/{job['id']}/reschedule", new)
    assert status == 200
    assert same["revision"] == 2
    # A window the rules refuse is 422, and the job keeps its time.
    backwards = {"starts_at": new["ends_at"], "ends_at": new["starts_at"]}
    status, answer = await post(client, token, f"/api/jobs/{job['id']}/reschedule", backwards)
    assert status == 422
    assert answer["error"] == "rejected"
    status, kept = await get(client, token, f"/api/jobs/{job['id']}")
    assert kept["starts_at"] == new["starts_at"]


async def test_cancel_cancels_every_pending_step_and_a_retry_is_the_same_answer(
    client: Client,
) -> None:
    token = await make_token(client)
    job = await _booked(client, token)
    path = f"/api/jobs/{job['id']}"
    status, cancelled = await post(client, token, f"{path}/cancel", {"reason": "고객 요청"})
    assert status == 200, cancelled
    assert cancelled["status"] == "cancelled"
    assert cancelled["reason"] == "고객 요청"
    assert cancelled["cancelled_at"] == "2026-11-23T10:00:00+09:00"
    # Nothing left to go: what was planned is cancelled (the confirmation may have been
    # settled by the journey planner first — here it had no path and was skipped).
    statuses = {s["key"]: s["status"] for s in cancelled["journey"]}
    assert "planned" not in statuses.values()
    assert statuses["reminder:r1"] == "cancelled"
    status, again = await post(client, token, f"{path}/cancel", {"reason": "고객 요청"})
    assert status == 200
    assert again == cancelled
    # A cancelled job cannot become a no-show, nor be rescheduled: 409 with the reason.
    status, answer = await post(client, token, f"{path}/cancel", {"status": "no_show"})
    assert status == 409
    assert answer["error"] == "conflict"
    assert "취소" in answer["message"]
    new = {"starts_at": "2026-11-28T10:00:00+09:00", "ends_at": "2026-11-28T12:00:00+09:00"}
    status, answer = await post(client, token, f"{path}/reschedule", new)
    assert status == 409


async def test_cancel_with_no_body_and_a_no_show(client: Client) -> None:
    token = await make_token(client)
    first = await _booked(client, token)
    resp = await client.post(f"/api/jobs/{first['id']}/cancel", headers=bearer(token))
    assert resp.status == 200
    assert (await resp.json())["status"] == "cancelled"
    second = await _booked(client, token, external_ref="x-2")
    status, job = await post(
        client, token, f"/api/jobs/{second['id']}/cancel", {"status": "no_show"}
    )
    assert status == 200
    assert job["status"] == "no_show"
    assert job["no_show_at"] is not None


async def test_a_finished_job_cannot_be_cancelled(client: Client) -> None:
    token = await make_token(client)
    job = await _booked(client, token)
    app = app_of(client)
    shop = app[keys.SETTINGS].shops[0]
    now = app[keys.CLOCK].now()
    await app[keys.DATABASE].write(complete(shop, shop_id(client), job["id"], "user:1", now))
    status, answer = await post(client, token, f"/api/jobs/{job['id']}/cancel", {})
    assert status == 409
    assert "완료" in answer["message"]


async def test_patch_changes_only_the_details_given(client: Client) -> None:
    token = await make_token(client)
    job = await _booked(client, token)
    path = f"/api/jobs/{job['id']}"
    resp = await client.patch(path, json={"notes": "  주차는 지하 2층  "}, headers=bearer(token))
    assert resp.status == 200
    changed = await resp.json()
    assert changed["notes"] == "주차는 지하 2층"
    assert changed["address"] == job["address"]
    assert changed["price_krw"] == 80000
    # Nothing re-planned: the same steps at the same times.
    assert [(s["key"], s["due_at"]) for s in changed["journey"]] == [
        (s["key"], s["due_at"]) for s in job["journey"]
    ]
    resp = await client.patch(
        path, json={"price_krw": None, "address": "서울시 은평구 1"}, headers=bearer(token)
    )
    changed = await resp.json()
    assert changed["price_krw"] is None
    assert changed["address"] == "서울시 은평구 1"
    audit = await rows(
        client, sa.select(AuditEntry.detail).where(AuditEntry.action == "job_details_changed")
    )
    assert [r.detail for r in audit] == [
        {"fields": ["notes"]},
        {"fields": ["address", "price_krw"]},
    ]
    # The same values again change nothing: no audit entry, the same answer.
    resp = await client.patch(path, json={"price_krw": None}, headers=bearer(token))
    assert resp.status == 200
    assert await resp.json() == changed
    assert (
        len(
            await rows(
                client,
                sa.select(AuditEntry.detail).where(AuditEntry.action == "job_details_changed"),
            )
        )
        == 2
    )
    for bad in ({"price_krw": -5}, {"address": None}, {"status": "done"}, {"notes": 1}):
        resp = await client.patch(path, json=bad, headers=bearer(token))
        assert resp.status == 422, bad
    status, kept = await get(client, token, path)
    assert status == 200
    assert kept["address"] == "서울시 은평구 1"
    resp = await client.patch("/api/jobs/999999", json={"notes": "x"}, headers=bearer(token))
    assert resp.status == 404


# --------------------------------------------------------------------------- reading


async def test_the_list_filters_by_time_and_status_and_pages_with_a_cursor(client: Client) -> None:
    token = await make_token(client)
    ids = []
    for day in (24, 25, 26, 27, 28):
        job = await _booked(
            client,
            token,
            starts_at=f"2026-11-{day}T14:00:00+09:00",
            ends_at=f"2026-11-{day}T16:00:00+09:00",
        )
        ids.append(job["id"])
    await post(client, token, f"/api/jobs/{ids[1]}/cancel", {})

    status, page = await get(client, token, "/api/jobs")
    assert [j["id"] for j in page["jobs"]] == ids
    assert page["next_cursor"] is None

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        status, page = await get(client, token, "/api/jobs", **params)
        assert status == 200
        assert len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert pages == 3

    # from is inclusive, to exclusive; an unencoded '+' in the offset is read as meant.
    resp = await client.get(
        "/api/jobs?from=2026-11-25T14:00:00+09:00&to=2026-11-27T14:00:00%2B09:00",
        headers=bearer(token),
    )
    assert [j["id"] for j in (await resp.json())["jobs"]] == ids[1:3]
    status, page = await get(client, token, "/api/jobs", status="cancelled")
    assert [j["id"] for j in page["jobs"]] == [ids[1]]
    resp = await client.get("/api/jobs?status=booked&status=cancelled", headers=bearer(token))
    assert len((await resp.json())["jobs"]) == 5
    for params in (
        {"limit": 0},
        {"limit": 201},
        {"limit": "x"},
        {"status": "lost"},
        {"from": "yesterday"},
        {"cursor": "bm9wZQ"},
    ):
        status, answer = await get(client, token, "/api/jobs", **params)
        assert status == 422, params
        assert answer["error"] == "invalid"


async def test_services_lists_the_catalogue(client: Client) -> None:
    token = await make_token(client)
    status, answer = await get(client, token, "/api/services")
    assert status == 200
    assert [(s["key"], s["name"]) for s in answer["services"]] == [
        ("aircon", "에어컨 청소"),
        ("lawn", "잔디 관리"),
    ]
    assert answer["services"][0]["prepare"] == "실외기 주변을 비워 주세요."


async def test_unknown_paths_and_methods_answer_in_json(client: Client) -> None:
    token = await make_token(client)
    resp = await client.get("/api/nothing", headers=bearer(token))
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"
    resp = await client.delete("/api/jobs/1", headers=bearer(token))
    assert resp.status == 405
    assert (await resp.json())["error"] == "method_not_allowed"
    assert "PATCH" in resp.headers["Allow"]
    status, _ = await get(client, token, f"/api/jobs/{2**63}")
    assert status == 404


async def test_using_a_token_marks_it_used_at_most_once_a_minute(client: Client) -> None:
    token = await make_token(client)
    clock = app_of(client)[keys.CLOCK]
    used = sa.select(ApiToken.last_used_at)
    assert (await rows(client, used))[0].last_used_at is None
    await get(client, token, "/api/services")
    first = (await rows(client, used))[0].last_used_at
    assert first == clock.now()
    clock.advance(seconds=30)  # type: ignore[attr-defined]
    await get(client, token, "/api/services")
    assert (await rows(client, used))[0].last_used_at == first
    clock.advance(seconds=31)  # type: ignore[attr-defined]
    await get(client, token, "/api/services")
    assert (await rows(client, used))[0].last_used_at == clock.now()
