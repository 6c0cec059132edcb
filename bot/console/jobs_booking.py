"""Booking a job: the form (`/console/jobs/new?conversation=<id>` from a conversation's
예약 잡기, `?customer=<id>` from a customer's page) and, for a customer who phoned and is
not one yet, the 고객 tab's "new customer" form (`POST /console/customers/new`), which
leads to the booking form.

The form works without a script: an empty arrival-window end is the start plus the
service's usual duration, the address is the customer's last job's. A form that does not
read, or that `core.jobs` refuses, comes back as typed with what is wrong, and nothing is
stored. On success the booking confirmation is planned in the same transaction
(`core.jobs.book`) and the owner lands on the job's page.
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from bot import keys
from bot.console import changes, customer_list
from bot.console.changes import jobs as job_changes
from bot.console.customer_list import Search
from bot.console.jobs_forms import (
    BookingForm,
    CustomerForm,
    booking_defaults,
    read_booking,
    read_customer,
)
from bot.console.layout import now, page, query_id, shop_of
from bot.console.middleware import see_other
from bot.console.queries.header import read_header
from bot.console.queries.jobs import BookingFor, read_booking_for, read_last_job
from bot.console.viewer import Viewer, current
from core.jobs import JobError


def _target_query(target: BookingFor) -> str:
    if target.conversation_id is not None:
        return f"conversation={target.conversation_id}"
    return f"customer={target.customer_id}"


async def _target(request: web.Request, viewer: Viewer) -> BookingFor | None:
    conversation_id = query_id(request, "conversation")
    customer_id = query_id(request, "customer")
    if conversation_id is None and customer_id is None:
        return None
    async with request.config_dict[keys.DATABASE].read() as conn:
        target = await read_booking_for(
            conn, viewer, conversation_id=conversation_id, customer_id=customer_id
        )
    if target is None:  # another shop's, or gone
        raise web.HTTPNotFound
    return target


async def _form_page(
    request: web.Request,
    viewer: Viewer,
    target: BookingFor,
    form: BookingForm,
    *,
    status: int = 200,
) -> web.Response:
    shop = shop_of(request, viewer)
    async with request.config_dict[keys.DATABASE].read() as conn:
        header = await read_header(conn, viewer, now(request), shop.timezone)
    return page(
        request,
        "booking.html",
        viewer=viewer,
        header=header,
        status=status,
        target=target,
        action=f"/console/jobs/new?{_target_query(target)}",
        form=form,
        services=shop.services,
        nav="jobs",
    )


async def new(request: web.Request) -> web.Response:
    viewer = current(request)
    target = await _target(request, viewer)
    if target is None:  # booking starts from a customer: find or add them first
        return see_other("/console/customers")
    shop = shop_of(request, viewer)
    async with request.config_dict[keys.DATABASE].read() as conn:
        last = await read_last_job(conn, viewer, target.customer_id)
    form = booking_defaults(
        shop,
        today=now(request).astimezone(shop.timezone).date(),
        address=last.address,
        service=last.service,
    )
    return await _form_page(request, viewer, target, form)


async def create(request: web.Request) -> web.Response:
    viewer = current(request)
    target = await _target(request, viewer)
    if target is None:
        raise web.HTTPBadRequest(text="book for a conversation or a customer")
    shop = shop_of(request, viewer)
    at = now(request)
    typed = BookingForm.posted(await request.post())
    booked, form = read_booking(
        typed, shop, today=at.astimezone(shop.timezone).date(), may_price=viewer.is_owner
    )
    if booked is None:
        return await _form_page(request, viewer, target, form, status=400)
    try:
        unit = job_changes.book(
            viewer, shop, target.customer_id, target.conversation_id, booked, at
        )
        job_id = await request.config_dict[keys.DATABASE].write(unit)
    except JobError as exc:
        refused = replace(form, error=str(exc))
        return await _form_page(request, viewer, target, refused, status=409)
    return see_other(f"/console/jobs/{job_id}")


# --------------------------------------------------------------------------- a new customer


async def add_customer(request: web.Request) -> web.Response:
    """A customer who phoned: added (with their consent, if they gave it) and on to the
    booking form; or the 고객 tab again with the form as typed."""
    viewer = current(request)
    new_customer, typed = read_customer(await request.post())
    if new_customer is None:
        return await _customers_page(request, viewer, typed)
    try:
        customer_id = await request.config_dict[keys.DATABASE].write(
            job_changes.add_customer(viewer, new_customer, now(request))
        )
    except changes.Refused as exc:
        taken = CustomerForm(
            typed.name, typed.phone, typed.marketing, {"phone": "taken"}, other=exc.other
        )
        return await _customers_page(request, viewer, taken, status=409)
    return see_other(f"/console/jobs/new?customer={customer_id}")


async def _customers_page(
    request: web.Request, viewer: Viewer, typed: CustomerForm, *, status: int = 400
) -> web.Response:
    shop = shop_of(request, viewer)
    at = now(request)
    async with request.config_dict[keys.DATABASE].read() as conn:
        listing = await customer_list.customers(conn, viewer, Search.parse(""), shop.timezone)
        header = await read_header(conn, viewer, at, shop.timezone)
    return page(
        request,
        "customers.html",
        viewer=viewer,
        header=header,
        status=status,
        listing=listing,
        new_customer=typed,
        nav="customers",
    )
