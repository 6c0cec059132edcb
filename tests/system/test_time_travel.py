"""The in-process demo on a moveable clock (tests/support/time_travel.py) serves the real
app, and moving its clock moves what the app says."""

from __future__ import annotations

import json
import urllib.request

from support.time_travel import TravellingDemo
from support.time_travel import travelling_demo as demo  # noqa: F401


def get(app: TravellingDemo, path: str) -> str:
    with urllib.request.urlopen(app.url + path, timeout=10) as r:  # noqa: S310 (loopback)
        body: bytes = r.read()
        return body.decode()


def test_the_app_serves_and_its_clock_moves(demo: TravellingDemo) -> None:  # noqa: F811
    assert json.loads(get(demo, "/healthz"))["status"] == "ok"
    assert demo.clock is not None
    before = demo.clock.now()
    after = demo.advance(days=7)
    assert (after - before).days == 7
    assert demo.clock.now() == after
    assert "한빛설비" in get(demo, "/simulator")
