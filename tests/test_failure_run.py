"""Running a checkpoint on a split from the failure analysis tab: tiny real Dense3D and Ross3D checkpoints
(`test_ask_scene.build_checkpoints`) on the session's generated dataset. A run scores the first N samples
of the split exactly as `python -m core predict` + `python -m core eval` score the truncated file, its
folder appears in the tab's report list, and a missing checkpoint, a task the checkpoint cannot do, a split
without ground truth or an unlisted checkpoint with logins on is a one-line message. The browser test
picks the checkpoint, clicks Run and sees the per-sample table of the run."""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from app_server import serve_app
from test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Served, _browser_or_skip
from test_ask_scene import build_checkpoints

from app.access import ensure_local_user
from app.context import AppContext
from app.failure_run import checkpoint_choices, run_from_app, runs_folder, task_choices
from app.failure_tab import report_choices, report_roots
from core.__main__ import main as core_main
from core.data.datasets.refseg import read_split
from core.data.errors import DataError
from core.data.scan2cap import caption_targets
from core.data.scanrefer import read_scanrefer
from core.eval.failures import select
from core.eval.run_split import run_split
from core.eval.samples import load_report
from core.models.errors import ModelError
from core.serve.ask import SceneModels
from review import ReviewService

pytestmark = pytest.mark.usefixtures("one_thread")
SPLIT = "val"


@pytest.fixture(scope="module")
def checkpoints(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_checkpoints(synth_root, tmp_path_factory.mktemp("run-checkpoints"))


@pytest.fixture(scope="module")
def data(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset root of links to the session's dataset, so that the runs written here stay here."""
    root = tmp_path_factory.mktemp("run-data")
    for entry in synth_root.iterdir():
        (root / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return root


def split_refer(data: Path) -> list:
    scenes = set(read_split(data, SPLIT))
    return [r for r in read_scanrefer(data / "annotations" / f"ScanRefer_filtered_{SPLIT}.json")
            if r.scene_id in scenes]  # fmt: skip


def make_ctx(data: Path, checkpoints: dict, db: Path, auth: bool = False) -> AppContext:
    service = ReviewService(f"sqlite:///{db}")
    ensure_local_user(service, "local")
    models = SceneModels(data, checkpoints["dense3d"], checkpoints["ross3d"], threads=1)
    return AppContext(service, data, None, auth=auth, local_user="local", models=models)


def test_a_dense3d_run_scores_the_first_n_samples_as_predict_and_eval_do(
    checkpoints: dict, data: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    run = run_split(checkpoints["dense3d"], data, "refseg", SPLIT, 3, runs)
    first = split_refer(data)[:3]
    assert len(split_refer(data)) > 3  # the cut is real
    table = load_report(run.report)
    assert run.samples == 3 and len(table.frame) == 3
    assert sorted(table.frame["key"]) == sorted(r.key for r in first)
    rows = select(table, "IoU")
    assert len(rows) == 3 and rows["IoU"].notna().all()
    # the folder says what ran; nothing half-written is left beside it
    assert run.folder.name.startswith(f"{Path(checkpoints['dense3d']).name}-refseg-{SPLIT}-n3-")
    assert [p.name for p in runs.iterdir()] == [run.folder.name]
    gt = run.folder / f"ScanRefer_filtered_{SPLIT}.json"
    assert [r.key for r in read_scanrefer(gt)] == [r.key for r in first]
    assert table.inputs["gt"] == str(gt)
    # the commands on the same truncated file give the same per-sample scores
    pred, out = tmp_path / "cli.json", tmp_path / "cli-eval.json"
    args = ["--checkpoint", str(checkpoints["dense3d"]), "--scans", str(data), "--queries", str(gt)]
    assert core_main(["predict", "dense3d", *args, "--out", str(pred), "--no-progress"]) == 0
    assert core_main(["eval", "refseg", "--gt", str(gt), "--pred", str(pred), "--scans", str(data),
                      "--out", str(out)]) == 0  # fmt: skip
    by_cli = {s["key"]: s["iou"] for s in json.loads(out.read_text())["samples"]}
    assert {s["key"]: s["iou"] for s in table.samples} == by_cli


def test_a_ross3d_scan2cap_run_keeps_every_description_of_the_first_n_objects(
    checkpoints: dict, data: Path, tmp_path: Path
) -> None:
    run = run_split(checkpoints["ross3d"], data, "scan2cap", SPLIT, 2, tmp_path / "runs")
    targets = caption_targets(split_refer(data))[:2]
    table = load_report(run.report)
    assert run.samples == 2 and len(table.frame) == 2
    assert sorted(table.frame["key"]) == sorted(f"{t.scene_id}|{t.object_id}" for t in targets)
    kept = read_scanrefer(run.folder / f"ScanRefer_filtered_{SPLIT}.json")
    assert len(kept) == sum(len(t.references) for t in targets)
    assert len(select(table, table.default_metric)) == 2


def test_a_run_from_the_app_is_listed_and_opens(checkpoints: dict, data: Path, tmp_path: Path) -> None:
    ctx = make_ctx(data, checkpoints, tmp_path / "r.db")
    roots = report_roots(ctx)
    choices = checkpoint_choices(ctx, roots)
    listed = {v: k for k, v in choices}
    assert len({k for k, _ in choices}) == len(choices)  # a person can tell them apart
    assert listed[str(Path(checkpoints["ross3d"]).resolve())].startswith("Ross3D · ")
    assert task_choices(str(checkpoints["dense3d"])) == ["refseg", "scanrefer", "multi3drefer"]
    run = run_from_app(ctx, roots, str(checkpoints["ross3d"]), "scanqa", SPLIT, 2)
    assert run.folder.parent == runs_folder(ctx, roots) == data.resolve() / "runs" / "app"
    assert str(run.report) in [path for _, path in report_choices(ctx)]
    assert len(select(load_report(run.report), "EM@1 clean")) == 2
    ctx.service.close()


@pytest.mark.parametrize(
    ("which", "task", "split", "message"),
    [
        (None, "refseg", SPLIT, "choose a checkpoint to run"),
        ("dense3d", "scanqa", SPLIT, "a dense3d checkpoint cannot run scanqa (it runs refseg, scanrefer"),
        ("ross3d", "refseg", SPLIT, "a ross3d checkpoint cannot run refseg"),
        ("dense3d", "refseg", "test", "split 'test' has no ground-truth file for refseg"),
        ("folder", "refseg", SPLIT, "not a checkpoint folder"),
    ],
)
def test_the_tab_refuses_a_bad_run_in_one_line(
    checkpoints: dict, data: Path, tmp_path: Path, which, task: str, split: str, message: str
) -> None:
    ctx = make_ctx(data, checkpoints, tmp_path / "r.db")
    chosen = {None: None, "folder": str(tmp_path)}.get(which, str(checkpoints.get(which)))
    with pytest.raises(gr.Error) as caught:
        run_from_app(ctx, report_roots(ctx), chosen, task, split, 3)
    shown = html.unescape(caught.value.message)  # the toast renders HTML: the message is escaped
    assert message in shown and "\n" not in shown
    assert not (data / "runs" / "app").exists() or all(
        not p.name.startswith(".") for p in (data / "runs" / "app").iterdir()
    )
    ctx.service.close()


def test_core_errors_name_the_problem(checkpoints: dict, data: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has no ground-truth file for multi3drefer"):
        run_split(checkpoints["dense3d"], data, "multi3drefer", "nope", 3, tmp_path)
    with pytest.raises(ModelError, match="not a checkpoint folder"):
        run_split(tmp_path, data, "refseg", SPLIT, 3, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_with_logins_only_a_listed_checkpoint_runs(checkpoints: dict, data: Path, tmp_path: Path) -> None:
    ctx = make_ctx(data, checkpoints, tmp_path / "r.db", auth=True)
    stray = shutil.copytree(checkpoints["dense3d"], tmp_path / "elsewhere")  # real, outside the app's folders
    with pytest.raises(gr.Error) as caught:
        run_from_app(ctx, report_roots(ctx), str(stray), "refseg", SPLIT, 3)
    assert "only the checkpoints listed can be run" in caught.value.message
    assert not (data / "runs" / "app").exists() or all(
        "elsewhere" not in p.name for p in (data / "runs" / "app").iterdir()
    )
    ctx.service.close()


@pytest.fixture(scope="module")
def served(
    data: Path, checkpoints: dict, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, AppContext]]:
    work = tmp_path_factory.mktemp("run-served")
    ctx = make_ctx(data, checkpoints, work / "review.db")
    with serve_app(ctx, work / "export") as url:
        yield Served(url, ctx.service), ctx


@pytest.mark.browser
def test_pick_a_checkpoint_click_run_and_see_its_samples(
    served: tuple[Served, AppContext], checkpoints: dict, data: Path
) -> None:
    sync_playwright = _browser_or_skip()
    server, ctx = served
    labels = {v: k for k, v in checkpoint_choices(ctx, report_roots(ctx))}
    label = {name: labels[str(Path(checkpoints[name]).resolve())] for name in ("dense3d", "ross3d")}
    task_is = "(task) => document.querySelector('#failure-run-task input').value === task"
    first = split_refer(data)[:3]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        page.goto(server.url)
        page.get_by_role("tab", name="Failure analysis").click()
        page.get_by_text("Run a checkpoint on a split").click()
        for name, task in (("ross3d", "scanqa"), ("dense3d", "refseg")):  # the task list follows the model
            page.locator("#failure-run-checkpoint input").click()
            page.get_by_role("option", name=label[name], exact=True).click()
            page.wait_for_function(task_is, arg=task, timeout=30_000)
        page.locator("#failure-run-limit input").fill("3")
        page.locator("#failure-run button, button#failure-run").first.click()
        page.wait_for_selector('#failure-run-note .failure-run[data-samples="3"]', timeout=120_000)
        page.wait_for_selector('#failure-note .table-count[data-rows="3"]', timeout=30_000)
        cells = page.locator('#failure-table [role="gridcell"]').all_inner_texts()
        assert {r.key for r in first} <= {c.strip() for c in cells}
        folder = page.get_attribute("#failure-run-note .failure-run", "data-folder")
        assert folder in page.input_value("#failure-report input")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "failure-run.png"), full_page=True)
        browser.close()
