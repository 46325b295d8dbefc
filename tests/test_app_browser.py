"""The app served for real: role checks over HTTP, and the review flow driven in headless Chromium.

Browser tests are marked `browser`; they skip (with the reason) when Playwright or Debian's
`/usr/bin/chromium` is missing. Screenshots of every workspace land in `test-artifacts/`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from app_server import serve_app
from test_app_data import annotated_demo, fresh_db

from app.context import AppContext
from app.demo import DEMO_PASSWORD
from review import ReviewService

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
XSS = ' <script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2">'


@dataclass
class Served:
    url: str
    service: ReviewService


def _inject_markup(records: list[dict]) -> list[dict]:
    """Every flagged caption (reviewed first) gets markup that must show as text."""
    for record in records:
        if record.get("status") == "flagged":
            record["description"] += XSS
    return records


@pytest.fixture(scope="module")
def served(sensor_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("served")
    demo_root = annotated_demo(sensor_root, tmp_path_factory.mktemp("app"))
    service = ReviewService(fresh_db(demo_root, work / "review.db", edit=_inject_markup))
    ctx = AppContext(service, sensor_root, demo_root / "densescan", auth=True)
    with serve_app(ctx, work / "export") as url:
        yield Served(url, service)


# roles over HTTP (no browser needed) ---------------------------------------------------------------------


def test_admin_actions_are_refused_to_an_annotator_over_the_api(served: Served) -> None:
    from gradio_client import Client

    annotator = Client(served.url, auth=("annotator", DEMO_PASSWORD), verbose=False)
    with pytest.raises(Exception, match="may not do this|annotator"):
        annotator.predict("intruder", "a-long-password-1", "admin", api_name="/admin_add_user")
    with pytest.raises(Exception, match="may not do this|annotator"):
        annotator.predict(api_name="/admin_export")
    assert "intruder" not in {u.username for u in served.service.list_users()}
    admin = Client(served.url, auth=("admin", DEMO_PASSWORD), verbose=False)
    assert "added" in admin.predict("newcomer", "a-long-password-2", "annotator", api_name="/admin_add_user")


def test_api_needs_a_login(served: Served) -> None:
    import httpx

    response = httpx.post(served.url + "gradio_api/call/admin_list_users", json={"data": []}, timeout=10)
    assert response.status_code in (401, 403)
    with pytest.raises(Exception):  # noqa: B017  (gradio_client raises its own error types)
        from gradio_client import Client

        Client(served.url, auth=("annotator", "wrong-password"), verbose=False)


# the browser ---------------------------------------------------------------------------------------------


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    return sync_playwright


def _item_id(page) -> int:
    return int(page.get_attribute("#item-header .item-header", "data-item-id"))


def _wait_for_item(page, not_id: int | None = None, is_id: int | None = None, timeout: float = 20_000) -> int:
    if is_id is not None:
        condition = f"document.querySelector('#item-header .item-header')?.dataset.itemId === '{is_id}'"
    else:
        condition = (
            "(() => { const h = document.querySelector('#item-header .item-header');"
            f" return h && h.dataset.itemId !== '{not_id}'; }})()"
        )
    page.wait_for_function(condition, timeout=timeout)
    # keys act once every panel shows the item (until then the page holds them back)
    page.wait_for_function("window.reviewScreen.ready()", timeout=timeout)
    return _item_id(page)


def _press(page, key: str) -> None:
    page.locator("#item-header").click()  # focus outside the text boxes
    page.keyboard.press(key)


@pytest.mark.browser
def test_review_flow_with_hotkeys_and_refresh(served: Served) -> None:
    sync_playwright = _browser_or_skip()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(served.url)
        page.get_by_label("username").fill("annotator")
        page.get_by_label("password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#item-header .item-header", timeout=60_000)
        page.wait_for_selector("#review-plot .js-plotly-plot", timeout=60_000)
        first = _item_id(page)

        # the flagged caption carries markup: it shows as text and runs nothing
        assert "<script>" in page.inner_text("#review-caption")
        assert page.evaluate("window.__xss") is None
        page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)

        _press(page, "a")  # approve
        second = _wait_for_item(page, not_id=first)

        _press(page, "e")  # edit: focus the caption box, type, Ctrl+Enter
        page.keyboard.press("End")
        page.keyboard.type(" Checked by hand.")
        page.keyboard.press("Control+Enter")
        third = _wait_for_item(page, not_id=second)

        _press(page, "r")  # reject with the default reason
        _wait_for_item(page, not_id=third)
        _press(page, "u")  # undo the reject: the third item comes back
        _wait_for_item(page, is_id=third)
        _press(page, "s")  # skip it
        fifth = _wait_for_item(page, not_id=third)

        # refresh in the middle of an edit: the draft and the item come back
        _press(page, "e")
        page.keyboard.type(" half-written words")
        page.wait_for_function(
            "document.querySelector('#draft-status')?.innerText.includes('draft saved')", timeout=20_000
        )
        typed = page.input_value("#editor textarea")
        # "draft saved" may be an autosave from the middle of the typing (a loaded machine types slowly):
        # reload once the stored draft holds all of it
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            draft = served.service.get_item(fifth, "annotator").draft
            if draft is not None and draft.text.description == typed:
                break
            time.sleep(0.2)
        page.reload()
        page.wait_for_selector("#item-header .item-header", timeout=60_000)
        assert _item_id(page) == fifth
        page.wait_for_function(
            "document.querySelector('#editor textarea')?.value.includes('half-written words')", timeout=20_000
        )
        assert page.input_value("#editor textarea") == typed
        assert "restored" in page.inner_text("#item-header")

        ready = {
            "Scene explorer": "#explorer-plot .js-plotly-plot",
            "Dashboard": "#dashboard-levels .js-plotly-plot",
        }
        assert page.get_by_role("tab", name="Admin").count() == 0  # annotators do not see it
        for tab, selector in ready.items():
            page.get_by_role("tab", name=tab).click()
            page.wait_for_selector(selector, timeout=60_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / f"{tab.lower().replace(' ', '-')}.png"), full_page=True)
        browser.close()

    # the database agrees with what the browser showed
    service = served.service
    assert [d.action.value for d in service.get_item(first).decisions] == ["approve"]
    edit = service.get_item(second)
    assert [d.action.value for d in edit.decisions] == ["edit"]
    assert edit.item.text.description.endswith("Checked by hand.")
    third_decisions = service.get_item(third).decisions
    assert [(d.action.value, d.undone_at is not None) for d in third_decisions] == [
        ("reject", True),
        ("skip", False),
    ]
    draft = service.get_item(fifth, "annotator").draft
    assert draft is not None and draft.text.description == typed


RECORD_PRESSES_JS = """() => {
  window.__presses = [];
  window.addEventListener("keydown", (event) => {  // window capture: before the page's own handlers
    if (event.key !== "a") return;
    const id = (selector) => document.querySelector(selector)?.dataset.itemId ?? null;
    const title = document.querySelector("#review-plot .gtitle")?.textContent ?? "";
    window.__presses.push({
      header: id('#item-header [data-review-panel="header"]'),
      caption: id("#review-caption [data-review-panel]"),
      crops: id("#crops [data-review-panel]"),
      title: (title.match(/item (\\d+)$/) || [null, null])[1],
      loading: document.body.classList.contains("review-loading"),
    });
  }, true);
}"""


def _login(page, url: str, username: str) -> None:
    page.goto(url)
    page.get_by_label("username").fill(username)
    page.get_by_label("password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#item-header .item-header", timeout=60_000)
    page.wait_for_function("window.reviewScreen && window.reviewScreen.ready()", timeout=60_000)


def _decisions_of(service: ReviewService, username: str) -> list[tuple[int, str]]:
    from sqlalchemy import select

    from review.schema import Decision, User

    with service.db.read() as session:
        user_id = session.scalars(select(User.id).where(User.username == username)).one()
        rows = session.execute(
            select(Decision.item_id, Decision.kind).where(Decision.user_id == user_id).order_by(Decision.id)
        ).all()
    return [(int(item_id), str(kind)) for item_id, kind in rows]


def _check_view_and_thumbnails(page) -> None:
    """The 3D view frames the object (its orange box is drawn around the middle of the view), the
    presets move the camera, and a thumbnail opens the full image."""
    import io

    import numpy as np
    from PIL import Image

    view = page.locator("#review-3d")
    shot = np.asarray(Image.open(io.BytesIO(view.screenshot())).convert("RGB")).astype(int)
    box_colour = np.abs(shot - np.array([255, 110, 0])).max(axis=2) < 40
    rows, cols = np.nonzero(box_colour)
    assert len(rows) > 50, "the object's box is not drawn"
    height, width = box_colour.shape
    assert abs(cols.mean() / width - 0.5) < 0.2 and abs(rows.mean() / height - 0.5) < 0.25
    eye = "document.getElementById('review-3d')._fullLayout.scene.camera.eye"
    before = page.evaluate(eye)
    page.locator("#review-3d .updatemenu-button").nth(1).click()  # "top"
    page.wait_for_function(f"{eye}.z > 1.0 && Math.abs({eye}.x) < 1e-6", timeout=10_000)
    assert page.evaluate(eye) != before
    page.locator("#review-3d .updatemenu-button").nth(0).click()  # "object": back to the framing
    page.wait_for_function(f"Math.abs({eye}.z - {before['z']}) < 1e-6", timeout=10_000)

    thumb = page.locator("#crops .thumb img").first
    shown_width = thumb.evaluate("img => img.naturalWidth")
    thumb.click()
    page.wait_for_function(
        "(() => { const i = document.querySelector('#review-lightbox img');"
        " return i && i.complete && i.naturalWidth > 0; })()",
        timeout=10_000,
    )
    assert page.evaluate("document.querySelector('#review-lightbox img').naturalWidth") >= shown_width
    page.keyboard.press("Escape")
    page.wait_for_function("!document.getElementById('review-lightbox')", timeout=5_000)


@pytest.mark.browser
def test_hotkeys_at_full_speed_decide_only_the_item_on_screen(served: Served) -> None:
    """Press `a` as fast as the page takes keys: every decision stored is about the item whose caption,
    3D title and crops were on screen at that press; presses while the next item loads do nothing."""
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        _login(page, served.url, "reviewer")
        page.evaluate(RECORD_PRESSES_JS)
        page.locator("#item-header").click()  # focus outside the text boxes
        accepted = 0
        for _ in range(2000):  # a key every few ms until ten were taken
            page.keyboard.press("a")
            log = page.evaluate("window.reviewScreen.log")
            accepted = sum(1 for entry in log if entry["accepted"] and entry["button"] == "btn-approve")
            if accepted >= 10:
                break
        assert accepted == 10
        page.wait_for_function("window.reviewScreen.ready()", timeout=60_000)
        presses = page.evaluate("window.__presses")
        log = page.evaluate("window.reviewScreen.log")
        page.screenshot(path=str(ARTIFACTS / "review-after-fast-keys.png"), full_page=True)
        # undo brings the last item back: once the page takes keys again, every panel shows it
        last = _decisions_of(served.service, "reviewer")[-1][0]
        page.keyboard.press("u")
        _wait_for_item(page, is_id=last)
        on_screen = page.evaluate(
            """() => ({
              panels: [...document.querySelectorAll("[data-review-panel]")].map((p) => p.dataset.itemId),
              title: document.querySelector("#review-plot .gtitle").textContent,
            })"""
        )
        assert set(on_screen["panels"]) == {str(last)} and on_screen["title"].endswith(f"item {last}")
        # Gradio's run history (every call's outputs in localStorage, rewritten at each call) is off: it
        # made each decision slower than the last
        history = "Object.keys(localStorage).filter((k) => k.startsWith('gradio:run-history'))"
        assert page.evaluate(history) == []
        _check_view_and_thumbnails(page)
        browser.close()

    assert len(presses) == len(log) > 10  # every press reached the gate; most were held back
    taken = [press for press, entry in zip(presses, log, strict=True) if entry["accepted"]]
    decided = _decisions_of(served.service, "reviewer")
    assert [kind for _, kind in decided] == ["approve"] * 10
    for press, (item_id, _) in zip(taken, decided, strict=True):
        # the caption, the 3D view's title and the crops all showed the decided item at that press
        assert press["header"] == press["caption"] == press["title"] == press["crops"] == str(item_id), press
    assert len({item_id for item_id, _ in decided}) == 10
    assert any(press["loading"] for press in presses)  # the page said it was loading in between


def test_a_decision_that_does_not_name_the_shown_item_is_refused(served: Served) -> None:
    """Over the API the page's script does not run: a decision must still name the item on screen."""
    from gradio_client import Client

    client = Client(served.url, auth=("admin", DEMO_PASSWORD), verbose=False)
    client.predict(api_name="/review_next")  # the admin's session now shows an item
    before = _decisions_of(served.service, "admin")
    result = client.predict("999999:1", "", "", "hallucination", "all", "all", api_name="/review_approve")
    assert "Not saved" in str(result) and "999999" in str(result)
    assert _decisions_of(served.service, "admin") == before


@pytest.mark.browser
def test_playwright_and_chromium_are_found() -> None:
    _browser_or_skip()
    assert shutil.which(str(CHROMIUM))
