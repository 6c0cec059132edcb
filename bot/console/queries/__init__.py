"""What the console's pages read, one module per page part: the header every page shows
(`header`), the inbox (`inbox`), a conversation and its timeline (`conversation`), a
customer (`customer`), jobs in lists (`jobs`) and one job (`job`), and the saved replies
(`saved_replies`); `waiting` is what waiting for an answer means to the first three. (The
고객 tab's list and search is bot/console/customer_list.py.)

Every query is scoped by the viewer's shop. Times come back as aware datetimes in the
shop's time zone (the pages show local time; `local`); storage stays UTC.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def local(dt: datetime | None, tz: ZoneInfo) -> datetime | None:
    return None if dt is None else dt.astimezone(tz)
