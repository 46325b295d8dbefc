"""Day-one things around the review workspace: who sees the Admin tab, logging out, exports into a
configured folder with a summary and a download, and a dashboard whose every bar is labelled.

The app is served for real on 127.0.0.1 with `--auth`; roles are checked over HTTP (gradio_client), and
in headless Chromium (marked `browser`; skipped with the reason without Playwright or chromium).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from app_server import free_port, serve_app
from test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _browser_or_skip
from test_app_data import annotated_demo, fresh_db

import app as app_package
from app.admin_tab import default_export_dir, export_summary, write_export
from app.context import AppContext
from app.dashboard_tab import annotator_figure, dataset_figures, words_figure
from app.demo import DEMO_PASSWORD
from core.data.densescan import DenseScanRecord
from review import QueueFilter, ReviewService, ReviewStatus
from review.stats import DecisionRow, votes_by_action

REPO = Path(app_package.__file__).resolve().parent.parent
TEXTS = "els => els.map(e => e.textContent)"  # SVG text has no innerText


@dataclass
class Served:
    url: str
    service: ReviewService
    export_dir: Path
    records: list[dict]


@pytest.fixture(scope="module")
def served(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("admin")
    demo_root = annotated_demo(synth_root, tmp_path_factory.mktemp("app"))
    service = ReviewService(fresh_db(demo_root, work / "review.db"))
    service.add_user("rita", DEMO_PASSWORD, "reviewer")
    ctx = AppContext(service, synth_root, demo_root / "densescan", auth=True)
    export_dir = work / "exports"
    records = json.loads((demo_root / "densescan" / "densescan.json").read_text())
    with serve_app(ctx, export_dir) as url:
        yield Served(url, service, export_dir, records)


def _approve_some(service: ReviewService, user: str, n: int) -> None:
    for i in range(n):
        item = service.next_item(user)
        service.approve(user, item.id, item.head_revision, f"{user}-approve-{i}-{item.id}")


# export ------------------------------------------------------------------------------------------------


def test_export_goes_to_the_folder_with_a_summary_per_level(served: Served, tmp_path: Path) -> None:
    _approve_some(served.service, "reviewer", 3)
    ctx = AppContext(served.service, None, None)
    before = set(os.listdir(Path.cwd()))
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    report = write_export(ctx, tmp_path / "out", "approved", when)
    again = write_export(ctx, tmp_path / "out", "approved", when)  # same second: a new file, none lost
    assert report.path == tmp_path / "out" / "densescan-approved-20260102-030405.json"
    assert again.path != report.path and report.path.is_file() and again.path.is_file()
    assert set(os.listdir(Path.cwd())) == before  # nothing written into the working directory
    written = json.loads(report.path.read_text())
    levels = {r["level"] for r in written}
    approved = served.service.list_items(QueueFilter(review_statuses=(ReviewStatus.APPROVED,)), limit=10_000)
    assert report.records == len(written) == len(approved) >= 1
    assert {lv: sum(c.values()) for lv, c in report.by_level.items()} == {
        lv: sum(r["level"] == lv for r in written) for lv in levels
    }
    summary = export_summary(report, "approved")
    assert str(report.path) in summary and f"**{report.records}**" in summary
    for level in levels:
        assert f"| {level} |" in summary
    everything = write_export(ctx, tmp_path / "out", "all", when)
    assert everything.records > report.records and "pending" in export_summary(everything, "all")


def test_default_export_folder_is_beside_the_data(tmp_path: Path) -> None:
    from importlib import util

    spec = util.spec_from_file_location("app_script", REPO / "app.py")
    script = util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = script.parse_args(["--data", str(tmp_path / "data")])
    assert script.export_dir_for(args, tmp_path / "data", f"sqlite:///{tmp_path / 'db' / 'r.db'}") == (
        tmp_path / "db" / "exports"
    )
    on_postgres = script.export_dir_for(args, tmp_path / "data", "postgresql://u:p@h/db")
    assert on_postgres == tmp_path / "data" / "exports"
    args = script.parse_args(["--export-dir", str(tmp_path / "mine")])
    assert script.export_dir_for(args, tmp_path, "postgresql://u:p@h/db") == tmp_path / "mine"
    ctx = AppContext(None, None, tmp_path / "demo" / "densescan")  # type: ignore[arg-type]
    assert default_export_dir(ctx) == tmp_path / "demo" / "exports"
    assert not default_export_dir(ctx).is_relative_to(REPO)


def test_export_over_http_is_for_admins_and_offers_the_file(served: Served) -> None:
    from gradio_client import Client

    _approve_some(served.service, "annotator", 2)
    for name in ("annotator", "rita"):
        client = Client(served.url, auth=(name, DEMO_PASSWORD), verbose=False)
        with pytest.raises(Exception, match="may not do this"):
            client.predict("approved", api_name="/admin_export")
    assert not served.export_dir.exists() or not any(served.export_dir.iterdir())
    rita = Client(served.url, auth=("rita", DEMO_PASSWORD), verbose=False)
    assert "| annotator | annotator | yes |" in rita.predict(api_name="/admin_list_users")

    admin = Client(served.url, auth=("admin", DEMO_PASSWORD), verbose=False)
    summary, downloaded = admin.predict("approved", api_name="/admin_export")
    files = sorted(served.export_dir.glob("densescan-approved-*.json"))
    assert len(files) == 1 and str(files[0]) in summary
    assert Path(downloaded).read_bytes() == files[0].read_bytes()
    assert len(json.loads(files[0].read_text())) >= 1


# dashboard figures -------------------------------------------------------------------------------------


def _record(level: str, description: str, object_name: str = "chair") -> DenseScanRecord:
    return DenseScanRecord("scene0000_00", "1", object_name, "0", description, [], level)


def test_every_category_is_labelled_and_the_chart_grows_with_them() -> None:
    names = [f"category_{i:02d}" for i in range(30)]
    records = [_record("object", "a chair", n) for n in names] * 2
    figures = dataset_figures(records, [])
    categories = figures[2]
    axis = categories.layout.yaxis
    assert axis.tickmode == "array" and set(axis.tickvals) == set(names)
    assert "category 07" in axis.ticktext  # readable: no underscores
    assert categories.layout.height >= 22 * len(names)
    assert "of 30" in categories.layout.title.text


def test_word_histograms_share_bins_and_are_normalised() -> None:
    records = [_record("object", "word " * n) for n in range(3, 40)] + [
        _record("scene", "word " * n) for n in (60, 80)
    ]
    figure = words_figure(records)
    traces = list(figure.data)
    assert {t.histnorm for t in traces} == {"percent"}
    assert len({(t.xbins.start, t.xbins.end, t.xbins.size) for t in traces}) == 1
    assert traces[0].xbins.end >= 80 and {t.name for t in traces} == {"object (37)", "scene (2)"}


def test_votes_are_shown_per_named_annotator() -> None:
    day = datetime(2026, 1, 1, tzinfo=UTC).date()
    rows = [
        DecisionRow(day, "ann", "chair", "object", "approve", False),
        DecisionRow(day, "ann", "chair", "object", "reject", False),
        DecisionRow(day, "bob", "bed", "object", "edit", False),
        DecisionRow(day, "bob", "bed", "object", "approve", True),  # undone: not counted
        DecisionRow(day, "cy", "bed", "object", "skip", False),  # a skip is no vote
    ]
    assert votes_by_action(rows) == {
        "ann": {"approve": 1, "edit": 0, "reject": 1},
        "bob": {"approve": 0, "edit": 1, "reject": 0},
    }
    figure = annotator_figure(rows)
    assert list(figure.layout.xaxis.tickvals) == ["ann", "bob"] and figure.layout.showlegend
    assert figure.layout.yaxis.dtick == 1  # whole votes on the axis, never 0.5


# the browser -------------------------------------------------------------------------------------------


def _login(page, url: str, user: str) -> None:
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#who-am-i", timeout=60_000)
    page.wait_for_function(
        f"document.querySelector('#who-am-i')?.innerText.includes('{user}')", timeout=60_000
    )


@pytest.mark.browser
def test_annotators_see_no_admin_tab_and_can_log_out(served: Served) -> None:
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        _login(page, served.url, "annotator")
        page.wait_for_timeout(500)
        assert page.get_by_role("tab", name="Review").is_visible()
        assert page.get_by_role("tab", name="Admin").count() == 0
        assert page.locator("#btn-add-user").count() == 0 or not page.locator("#btn-add-user").is_visible()
        page.locator("#btn-logout").click()
        page.get_by_role("button", name="Login").wait_for(timeout=30_000)  # back at the login form

        _login(page, served.url, "rita")
        page.get_by_role("tab", name="Admin").click()
        page.locator("#btn-list-users").wait_for(timeout=30_000)
        assert not page.locator("#btn-export").is_visible()  # a reviewer lists users, no more
        page.locator("#btn-logout").click()
        page.get_by_role("button", name="Login").wait_for(timeout=30_000)

        _login(page, served.url, "admin")
        page.get_by_role("tab", name="Admin").click()
        page.locator("#btn-export").click()
        page.wait_for_function(
            "document.querySelector('#export-summary')?.innerText.includes('Exported')", timeout=30_000
        )
        assert str(served.export_dir) in page.inner_text("#export-summary")
        assert page.locator("#export-file a[download], #export-file a").count() >= 1
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-export.png"), full_page=True)
        browser.close()


@pytest.mark.browser
def test_dashboard_draws_every_category_label(served: Served) -> None:
    sync_playwright = _browser_or_skip()
    objects = [r for r in served.records if r["level"] == "object"]
    categories = {r["object_name"] for r in objects}
    _approve_some(served.service, "annotator", 1)
    _approve_some(served.service, "reviewer", 1)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        _login(page, served.url, "admin")
        page.get_by_role("tab", name="Dashboard").click()
        page.wait_for_selector("#dashboard-categories .js-plotly-plot .ytick text", timeout=60_000)
        drawn = page.eval_on_selector_all("#dashboard-categories .ytick text", TEXTS)
        assert sorted(drawn) == sorted(c.replace("_", " ") for c in categories)
        page.wait_for_selector("#dashboard-annotators .js-plotly-plot .xtick text", timeout=60_000)
        names = page.eval_on_selector_all("#dashboard-annotators .xtick text", TEXTS)
        assert {"reviewer", "annotator"} <= set(names)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-labels.png"), full_page=True)
        browser.close()


# start-up ----------------------------------------------------------------------------------------------


def test_a_built_demo_is_reused_and_says_so(
    synth_root: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture
) -> None:
    from app.demo import build_demo

    demo_root = annotated_demo(synth_root, tmp_path_factory.mktemp("app"))
    build_demo(demo_root, scans=synth_root, progress=True)
    out = capsys.readouterr().out
    assert "kept from an earlier run" in out and "demo built" not in out and "step" not in out


def test_app_py_says_what_it_does_from_the_first_line(
    synth_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from test_app_multiprocess import _start, _wait_served

    demo_root = annotated_demo(synth_root, tmp_path_factory.mktemp("app"))
    work = tmp_path_factory.mktemp("start")
    db = f"sqlite:///{work / 'review.db'}"
    args = ["--data", str(synth_root), "--annotations", str(demo_root / "densescan"), "--db", db]
    server = _start([*args, "--export-dir", str(work / "out")], free_port())
    try:
        _wait_served(server)
    finally:
        server.process.terminate()
        server.process.wait(timeout=20)
    lines = server.lines
    assert lines[0].startswith("DenseScan app: starting")
    steps = [
        "loading the review store",
        "opening the review database",
        "importing",
        "imported ",
        "loading the web app",
    ]
    at = [next(i for i, line in enumerate(lines) if line.startswith(step)) for step in steps]
    assert at == sorted(at), lines
    ready = next(line for line in lines if line.startswith("ready after"))
    assert str(work / "out") in ready
    # the shipped models are loaded and tried on the first scene while the page is being opened
    warming = [i for i, line in enumerate(lines) if line.startswith("warming the models on scene")]
    assert warming and warming[0] > lines.index(ready), lines
