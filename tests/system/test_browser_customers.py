"""The 고객 tab in a real browser (issue #11, finding a customer): a regular phones, and the
owner finds them on a phone-sized screen by a part of their name or a tag, then opens
their page.

Same harness as test_browser.py: the real `dangol demo` in a subprocess, Debian's
Chromium, a 390×844 window; the customer comes from the simulator.
"""

from __future__ import annotations

import re

from support.browser import Demo, Phone, browser, demo, phone, shot, start_conversation

__all__ = ["browser", "demo", "phone"]  # the fixtures this module uses

NAME = "한결같은단골"
TAG = "보일러정기점검"


def test_the_owner_finds_a_customer_by_name_or_tag_and_opens_their_page(
    phone: Phone, demo: Demo
) -> None:
    _, owner, _ = start_conversation(phone, demo, "지난번 보일러 또 봐주실 수 있나요?")
    page = owner.page
    # The owner names the simulator's customer and tags them, from the conversation.
    edit = page.locator("form[action^='/console/customers/']").filter(has=page.locator("#c-name"))
    customer_id = (edit.get_attribute("action") or "").rsplit("/", 1)[-1]
    assert customer_id.isdigit()
    page.locator(".edit-customer summary").click()
    page.fill("#c-name", NAME)
    page.fill("#c-tags", TAG)
    edit.locator("button[type=submit]").click()
    page.locator("#customer .facts dd", has_text=NAME).wait_for()

    # Later: the 고객 tab, beside 문의함.
    page.locator(".mainnav a", has_text="고객").click()
    page.wait_for_url(re.compile(r"/console/customers$"))
    assert page.locator(".mainnav a[aria-current=page]").inner_text() == "고객"
    row = page.locator(f"li.customer-row[data-id='{customer_id}']")
    assert row.is_visible(), "a customer who just wrote is at the top of the list"

    # A part of the name finds them; the row fits the phone's width and opens their page.
    page.fill("#customer-q", "같은단")
    page.press("#customer-q", "Enter")
    page.wait_for_url(re.compile(r"/console/customers\?q="))
    assert page.locator("li.customer-row").count() == 1
    assert NAME in row.inner_text()
    assert TAG in row.inner_text()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390, "no sideways scroll"
    box = page.locator(".customer-search button").bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 390, "the search button is on screen"
    shot(page, "30-customer-search.png")
    row.locator("a").click()
    page.wait_for_url(re.compile(rf"/console/customers/{customer_id}$"))
    assert NAME in page.locator("#customer").inner_text()

    # The tag finds them too, and the back link returns to the tab.
    page.locator("a.back").click()
    page.wait_for_url(re.compile(r"/console/customers$"))
    page.fill("#customer-q", f"#{TAG}")
    page.locator(".customer-search button").click()
    page.wait_for_url(re.compile(r"/console/customers\?q="))
    assert [r.get_attribute("data-id") for r in page.locator("li.customer-row").all()] == [
        customer_id
    ]
    shot(page, "31-customer-tag.png")
