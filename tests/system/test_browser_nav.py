"""The console's navigation on a narrow phone (issue #11, leftover): since the 고객 tab was
added, the top navigation scrolled sideways at 390 px. Every signed-in page must fit a
390 px and a 360 px wide screen — neither the page nor the navigation scrolls sideways —
with the waiting count beside 문의함 in view and every tab a thumb-sized target.

Same harness as test_browser.py: the real `dangol demo`, Debian's Chromium, phone size.
"""

from __future__ import annotations

import re

from support.browser import Demo, Phone, browser, demo, phone, shot, start_conversation

__all__ = ["browser", "demo", "phone"]  # the fixtures this module uses

WIDTHS = (390, 360)
TAP_MIN = 44  # px: the smallest target a thumb hits reliably

# What overflows sideways, measured the way the browser scrolls: the page as a whole, and
# the navigation on its own (it may scroll by itself without moving the page).
_OVERFLOW = """() => {
  const page = document.scrollingElement;
  const nav = document.querySelector(".mainnav");
  return {
    page: [page.scrollWidth, page.clientWidth],
    nav: nav ? [nav.scrollWidth, nav.clientWidth] : null,
  };
}"""
# Each control of the navigation (tabs and buttons) that is shown, in viewport coordinates.
_CONTROLS = """() => Array.from(document.querySelectorAll(".mainnav a, .mainnav button"))
  .filter(c => c.getClientRects().length > 0)
  .map(c => {
    const r = c.getBoundingClientRect();
    return {
      tab: c.tagName === "A", text: c.textContent.trim(),
      left: r.left, right: r.right, height: r.height,
    };
  })"""
_COUNT = """() => {
  const c = document.getElementById("nav-waiting");
  if (!c || c.hidden) return null;
  const r = c.getBoundingClientRect();
  return {left: r.left, right: r.right, width: r.width, text: c.textContent.trim()};
}"""
_WORST = """() => {
  document.getElementById("notify-on").hidden = false;
  document.getElementById("nav-waiting").textContent = "999";
}"""


def test_the_navigation_fits_a_narrow_phone_on_every_page(phone: Phone, demo: Demo) -> None:
    _, owner, conv_id = start_conversation(phone, demo, "내일 오전에 에어컨 청소 되나요?")
    page = owner.page
    customer_id = (
        page.locator("form[action^='/console/customers/']")
        .filter(has=page.locator("#c-name"))
        .get_attribute("action")
        or ""
    ).rsplit("/", 1)[-1]
    assert customer_id.isdigit()
    pages = {
        "inbox": "/console/",
        "conversation": f"/console/c/{conv_id}",
        "customers": "/console/customers",
        "customer": f"/console/customers/{customer_id}",
        "saved-replies": "/console/saved-replies",
        "account": "/console/me",
    }
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844})
        for name, path in pages.items():
            page.goto(path)
            page.wait_for_url(re.compile(re.escape(path) + "$"))
            # Then the worst case: "알림 켜기" shows only while the browser has not been
            # asked (a phone that has not been asked must fit it too), and a busy day's
            # three-digit count.
            for worst in (False, True):
                if worst:
                    page.evaluate(_WORST)
                where = f"{name} at {width} px" + (" (worst case)" if worst else "")
                overflow = page.evaluate(_OVERFLOW)
                scroll, client = overflow["page"]
                assert scroll <= client, f"{where}: the page scrolls sideways ({scroll}>{client})"
                assert overflow["nav"] is not None, f"{where}: no navigation"
                scroll, client = overflow["nav"]
                assert scroll <= client, f"{where}: the nav scrolls sideways ({scroll}>{client})"

                controls = page.evaluate(_CONTROLS)
                tabs = [c["text"].split()[0] for c in controls if c["tab"]]
                assert tabs[:2] == ["문의함", "고객"], where
                for c in controls:
                    assert c["left"] >= 0, f"{where}: {c['text']} starts off screen"
                    assert c["right"] <= width, f"{where}: {c['text']} ends off screen"
                    assert c["height"] >= TAP_MIN, f"{where}: {c['text']} is too small to tap"
                # The customer above is waiting: 문의함 shows how many, in view.
                count = page.evaluate(_COUNT)
                assert count is not None, f"{where}: no waiting count beside 문의함"
                assert count["text"].isdigit(), where
                assert count["width"] > 0, where
                assert count["left"] >= 0, f"{where}: the count starts off screen"
                assert count["right"] <= width, f"{where}: the count ends off screen"
            shot(page, f"40-nav-{width}-{name}.png")

    # 로그아웃 moved out of the navigation to 내 정보, and still signs the owner out.
    page.locator(".mainnav a", has_text="내 정보").click()
    page.wait_for_url(re.compile(r"/console/me$"))
    page.locator("main.account form.logout button").click()
    page.wait_for_url(re.compile(r"/console/login"))
    page.goto("/console/")
    page.wait_for_url(re.compile(r"/console/login"))
