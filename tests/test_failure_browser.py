"""The failure analysis tab served for real and driven in headless Chromium: a refseg report scored by
`python -m core eval` opens worst first; clicking a failure draws the 3D view with true positive / false
positive / false negative points in their colours and counts; "send to review" puts the sample in the
review database, and the review workspace then serves it as the next item."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import serve_app
from test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Served, _browser_or_skip
from test_failure_analysis import build_reports

from app.access import ensure_local_user
from app.context import AppContext
from app.failure_view import KIND_COLORS, KIND_NAMES
from core.eval.failures import select
from core.eval.outcomes import sample_outcome
from core.eval.samples import load_report
from core.scene.scannet import load_scene
from review import QueueFilter, ReviewService
from review.failures import FAILURE_REASON


@pytest.fixture(scope="module")
def report(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder whose runs/ holds one refseg report (the scans are the session's, linked)."""
    data = tmp_path_factory.mktemp("failure-data")
    (data / "scans").symlink_to(synth_root / "scans", target_is_directory=True)
    reports = build_reports(synth_root, tmp_path_factory.mktemp("failure-browser-reports"), ("refseg",))
    (data / "runs").mkdir()
    return Path(shutil.copy(reports["refseg"], data / "runs" / reports["refseg"].name))


@pytest.fixture(scope="module")
def served(report: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("failure-served")
    service = ReviewService(f"sqlite:///{work / 'review.db'}")
    ensure_local_user(service, "local")
    ctx = AppContext(service, report.parent.parent, None, auth=False, local_user="local")
    with serve_app(ctx, work / "export") as url:
        yield Served(url, service)


PLOT_TRACES_JS = """(key) => {
  const div = document.querySelector('#failure-3d .js-plotly-plot');
  if (!div || !div.data || !div.layout || !div.layout.meta || div.layout.meta.sample !== key) return null;
  return div.data.map((t) => [t.name, t.marker ? t.marker.color : null, t.mode]);
}"""


@pytest.mark.browser
def test_click_a_failure_see_tp_fp_fn_and_send_it_to_review(
    served: Served, report: Path, synth_root: Path
) -> None:
    sync_playwright = _browser_or_skip()
    table = load_report(report)
    scene = load_scene(synth_root, table.frame["scene"].iloc[0], with_frames=False)
    rows = select(table, "IoU")
    outcomes = {k: sample_outcome(table, k, scene.mesh.vertices, scene.vertex_instance) for k in rows["key"]}
    # the worst sample that has all three kinds of points
    key = next(k for k in rows["key"] if all(outcomes[k].counts().values()))
    expected = outcomes[key].counts()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        page.goto(served.url)
        page.get_by_role("tab", name="Failure analysis").click()
        page.wait_for_selector("#failure-note .table-count", timeout=60_000)
        assert page.get_attribute("#failure-note .table-count", "data-rows") == str(len(rows))
        # filter to the sample's class: the note counts what the filter leaves
        name = table.frame["class"].iloc[table.position(key)]
        page.locator("#failure-class input").click()
        page.get_by_role("option", name=name, exact=True).click()
        left = int((table.frame["class"] == name).sum())
        page.wait_for_selector(f'#failure-note .table-count[data-rows="{left}"]', timeout=30_000)
        cell = page.locator('#failure-table [role="gridcell"]').filter(
            has_text=re.compile(f"^\\s*{re.escape(key)}\\s*$")
        )
        for _ in range(40):  # the table draws the rows in view: scroll down until the sample's row is drawn
            if cell.count():
                break
            page.evaluate("document.querySelector('#failure-table .virtual-table-viewport').scrollTop += 120")
            page.wait_for_timeout(150)
        cell.first.click()
        page.wait_for_selector(f'#failure-detail [data-sample-key="{key}"]', timeout=30_000)
        traces = None
        page.wait_for_function(f"({PLOT_TRACES_JS})({key!r}) !== null", timeout=30_000)
        traces = page.evaluate(PLOT_TRACES_JS, key)
        by_kind = {}
        for kind, name in KIND_NAMES.items():
            found = [t for t in traces if t[0].startswith(name)]
            assert len(found) == 1, (kind, traces)
            by_kind[kind] = found[0]
            assert found[0][0] == f"{name} · {expected[kind]} points"
            assert found[0][1] == KIND_COLORS[kind]
        counts = page.locator("#failure-detail .failure-counts")
        assert [int(counts.get_attribute(f"data-{k.lower()}")) for k in ("TP", "FP", "FN")] == list(
            expected.values()
        )
        assert f"{table.sample(key)['iou']:.3f}" in page.inner_text("#failure-detail")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "failure-analysis.png"), full_page=True)

        page.locator("#failure-reason textarea").fill("the mask spills onto the neighbour")
        page.locator("#failure-send").click()
        page.wait_for_selector("#failure-sent .failure-sent[data-item-id]", timeout=30_000)
        item_id = int(page.get_attribute("#failure-sent .failure-sent", "data-item-id"))
        assert page.get_attribute("#failure-sent .failure-sent", "data-created") == "1"
        queued = served.service.list_items(QueueFilter(flag_reasons=(FAILURE_REASON,)))
        assert [i.id for i in queued] == [item_id]
        (note,) = queued[0].extra["failures"]
        assert note["sample_key"] == key and "neighbour" in note["reason"]

        # the review workspace serves it as the next item
        page.get_by_role("tab", name="Review").click()
        page.locator("#btn-next").click()
        page.wait_for_selector(f'#item-header .item-header[data-item-id="{item_id}"]', timeout=60_000)
        page.wait_for_selector(f'#review-why [data-item-id="{item_id}"] .model-failures', timeout=30_000)
        why = page.inner_text("#review-why")
        assert "Sent from failure analysis" in why and key in why and "neighbour" in why
        browser.close()
