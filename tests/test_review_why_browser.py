"""The why panel and the reason filter in the served app, driven in headless Chromium: a flagged item
shows why beside its caption, a reason filter that leaves nothing says so, and the explorer lists every
scene."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import serve_app
from test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Served, _browser_or_skip
from test_app_data import annotated_demo, fresh_db

from app.context import AppContext
from app.demo import DEMO_PASSWORD
from review import QueueFilter, ReviewService
from review.why import why_of


@pytest.fixture(scope="module")
def served(sensor_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("why-served")
    demo_root = annotated_demo(sensor_root, tmp_path_factory.mktemp("app"))
    service = ReviewService(fresh_db(demo_root, work / "review.db"))
    ctx = AppContext(service, sensor_root, demo_root / "densescan", auth=True)
    with serve_app(ctx, work / "export") as url:
        yield Served(url, service)


@pytest.mark.browser
def test_a_flagged_item_shows_why_and_an_empty_reason_filter_says_so(served: Served) -> None:
    sync_playwright = _browser_or_skip()
    flagged = served.service.list_items(QueueFilter(pipeline_statuses=("flagged",)))
    assert flagged, "the demo run flags at least one caption"
    why = why_of(flagged[0])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(served.url)
        page.get_by_label("username").fill("annotator")
        page.get_by_label("password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#item-header .item-header", timeout=60_000)
        # flagged items come first: the first item is the flagged one, and its why panel is its own
        shown = int(page.get_attribute("#item-header .item-header", "data-item-id"))
        assert shown == flagged[0].id
        own_panel = f'#review-why [data-review-panel="why"][data-item-id="{shown}"]'
        page.wait_for_selector(own_panel, timeout=30_000)
        panel = page.inner_text("#review-why")
        assert "Why flagged:" in panel and why.reason_labels[0] in panel
        assert why.consistency_answer and why.consistency_answer in panel
        assert all(conflict in panel for conflict in why.conflicts)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review-why.png"), full_page=True)

        # filter by a reason no item has: the queue says which filter left nothing
        page.locator("#review-reason input").click()
        page.get_by_role("option", name="a size claim is contradicted").click()
        page.locator("#btn-next").click()
        page.wait_for_function(
            "document.querySelector('#review-message')?.innerText.includes('Nothing left for you to review')",
            timeout=30_000,
        )
        assert "no items flagged because a size claim is contradicted" in page.inner_text("#review-message")
        assert page.inner_text("#review-why").strip() == ""

        # the explorer lists every scene, and its empty filter says so too
        total = len(served.service.list_items(limit=100_000))
        page.get_by_role("tab", name="Scene explorer").click()
        page.wait_for_selector("#explorer-table-note .table-count", timeout=60_000)
        page.locator("#explorer-scene input").click()
        page.get_by_role("option", name="all scenes").click()
        page.wait_for_function(
            f"document.querySelector('#explorer-table-note')?.innerText.startsWith('{total} items')",
            timeout=30_000,
        )
        page.locator("#explorer-reason input").click()
        page.get_by_role("option", name="a size claim is contradicted").click()
        page.wait_for_function(
            "document.querySelector('#explorer-table-note')?.innerText"
            ".includes('no items flagged because a size claim is contradicted')",
            timeout=30_000,
        )
        browser.close()
