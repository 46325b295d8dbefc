"""Review that retrains: pipeline output -> review decisions -> `python -m review export` -> `python -m core
train dense3d --init CHECKPOINT --densescan EXPORT` -> `python -m core eval` before and after -> the model
registry (the Dashboard's "model versions" table).

Everything is real: the DenseScan pipeline annotates a generated scene, a SQLite review database takes the
decisions through `ReviewService`, and the commands run as a user types them. The fine-tuned checkpoint's
recorded training set must hold the corrected text and none of the rejected records.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from pathlib import Path

import pytest
from dense3d_tiny import TINY
from dense3d_trained import train_tiny_dense3d
from test_review_data import PASSWORD

from core.__main__ import main as core_main
from core.data.datasets.refseg import read_split
from core.train.registry import list_models
from review import Edit, QueueFilter, ReviewConfig, ReviewService
from review.cli import main as review_main

pytestmark = pytest.mark.usefixtures("one_thread")

EDITS = 2  # object captions a reviewer corrects
REJECTS = 2  # ... rejects
APPROVALS = 2  # ... approves as they are


def _key() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def scene_id(synth_root: Path) -> str:
    return read_split(synth_root, "train")[0]


@pytest.fixture(scope="module")
def pipeline_out(synth_root: Path, scene_id: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m core annotate` on one training scene (the offline grounded captioner)."""
    out = tmp_path_factory.mktemp("annotate") / "out"
    args = ["annotate", "--scans", str(synth_root), "--out", str(out), "--scenes", scene_id, "--no-progress"]
    assert core_main(args) == 0
    return out


@pytest.fixture(scope="module")
def base(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Dense3D taught the answer template on two ScanRefer queries (as test_predict_dense3d's
    fixture), saved where the registry looks: <models>/base."""
    models = tmp_path_factory.mktemp("models")
    model, _ = train_tiny_dense3d(synth_root, models.parent / "base-cache")
    return model.save_pretrained(models / "base")


@pytest.fixture(scope="module")
def reviewed(pipeline_out: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Decisions made through the review service, then `python -m review export`."""
    tmp = tmp_path_factory.mktemp("review")
    url = f"sqlite:///{tmp / 'review.db'}"
    service = ReviewService(url, ReviewConfig(double_review_rate=0.0))
    service.import_annotations(pipeline_out)
    for name in ("alice", "bob"):
        service.add_user(name, PASSWORD)
    corrected, rejected, approved = {}, {}, []
    objects = QueueFilter(levels=("object",))
    for i in range(EDITS + REJECTS + APPROVALS):
        item = service.next_item("alice", objects)
        assert item is not None, "the pipeline wrote too few object captions for this test"
        if i < EDITS:
            text = f"Corrected {i}: the {item.object_name.replace('_', ' ')} that stands by the north wall."
            done = service.edit_and_approve("alice", item.id, item.head_revision, Edit(text), _key())
            service.approve("bob", item.id, done.item.head_revision, _key())  # the second approval
            corrected[item.key] = text
        elif i < EDITS + REJECTS:
            service.reject("alice", item.id, item.head_revision, "hallucination", _key())
            rejected[item.key] = item.text.description
        else:
            service.approve("alice", item.id, item.head_revision, _key())
            approved.append(item.key)
    export = tmp / "reviewed.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert review_main(["export", "--db", url, "--out", str(export)]) == 0
    assert f"--densescan {export}" in printed.getvalue()  # the next command, spelled out
    return {"export": export, "corrected": corrected, "rejected": rejected, "approved": approved, "url": url}


def _preset(tmp: Path) -> Path:
    preset = {
        "model": TINY,
        "data": {"split": "train", "cache_dir": str(tmp / "cache")},
        "train": {"steps": 3, "batch_size": 2, "lr": 1e-3, "warmup_steps": 0, "checkpoint_every": 100},
    }
    path = tmp / "finetune.json"
    path.write_text(json.dumps(preset))
    return path


@pytest.fixture(scope="module")
def finetuned(base: Path, reviewed: dict, synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m core train dense3d --init BASE --densescan EXPORT --sources none` for a few steps."""
    tmp = tmp_path_factory.mktemp("finetune")
    out = base.parent / "finetuned"  # beside the base checkpoint: both are in the registry's folder
    args = ["train", "dense3d", "--config", str(_preset(tmp)), "--init", str(base), "--data", str(synth_root)]
    args += ["--densescan", str(reviewed["export"]), "--sources", "none", "--out", str(out)]
    assert core_main(args) == 0
    return out / "model"


def _key_of(sample: dict) -> tuple[str, str, str]:
    scene, obj, ann = sample["key"].split("|")
    return scene, obj, ann


def test_the_fine_tuned_training_set_has_the_corrections_and_not_the_rejections(finetuned, reviewed):
    rows = [json.loads(line) for line in (finetuned / "training_set.jsonl").read_text().splitlines()]
    by_key = {_key_of(r): r for r in rows}
    corrected = {(k.scene_id, k.object_id, k.ann_id): t for k, t in reviewed["corrected"].items()}
    rejected = {(k.scene_id, k.object_id, k.ann_id): t for k, t in reviewed["rejected"].items()}
    approved = {(k.scene_id, k.object_id, k.ann_id) for k in reviewed["approved"]}
    assert set(by_key) == set(corrected) | approved  # exactly the reviewed records, nothing else
    for key, text in corrected.items():
        assert by_key[key]["question"] == text
        assert by_key[key]["provenance"]["edited"] is True
        assert by_key[key]["provenance"]["reviewer"] == "bob"
    assert not set(rejected) & set(by_key)
    questions = {r["question"] for r in rows}
    assert not set(rejected.values()) & questions
    assert all(r["kind"] == "densescan" and r["provenance"]["review_status"] == "approved" for r in rows)

    recipe = json.loads((finetuned / "training.json").read_text())
    assert recipe["init"].endswith("base") and recipe["steps_done"] == 3
    assert recipe["reviewed_records"] == len(rows) == EDITS + APPROVALS
    assert recipe["reviewed_edited"] == EDITS
    assert recipe["densescan"] == [str(reviewed["export"])]


def _evaluate(checkpoint: Path, queries: Path, root: Path, tmp: Path) -> dict:
    """`python -m core predict dense3d` on the reviewed queries, then `python -m core eval refseg` with the
    report saved in the checkpoint's eval/ folder (where the registry reads scores)."""
    pred = tmp / f"{checkpoint.parent.name}-{checkpoint.name}-refseg.json"
    args = ["predict", "dense3d", "--checkpoint", str(checkpoint), "--scans", str(root)]
    assert core_main([*args, "--queries", str(queries), "--out", str(pred), "--no-progress"]) == 0
    report = checkpoint / "eval" / "refseg.json"
    args = ["eval", "refseg", "--gt", str(queries), "--pred", str(pred), "--scans", str(root)]
    assert core_main([*args, "--out", str(report)]) == 0
    return json.loads(report.read_text())


def test_eval_before_and_after_and_the_registry_lists_both_versions(
    base, finetuned, reviewed, synth_root, tmp_path, monkeypatch
):
    before = _evaluate(base, reviewed["export"], synth_root, tmp_path)
    after = _evaluate(finetuned, reviewed["export"], synth_root, tmp_path)
    assert before["num_samples"] == after["num_samples"] == EDITS + APPROVALS

    versions = {v.name: v for v in list_models([base.parent])}
    name = base.parent.name
    assert set(versions) == {f"{name}/base", f"{name}/finetuned/model"}
    old, new = versions[f"{name}/base"], versions[f"{name}/finetuned/model"]
    assert old.architecture == new.architecture == "Dense3DModel"
    assert old.reviewed_records is None and new.reviewed_records == EDITS + APPROVALS
    assert new.samples == EDITS + APPROVALS and new.steps == 3 and new.init == str(base)
    assert new.git_commit and new.git_commit != "unknown"
    for version, report in ((old, before), (new, after)):
        assert version.scores["refseg"] == pytest.approx(report["metrics"]["overall"])
        assert "mIoU" in version.scores["refseg"]

    from app.dashboard_tab import model_versions

    monkeypatch.setenv("DENSESCAN_MODELS", str(base.parent))
    table = model_versions()
    rows = table[table["model"].isin([f"{name}/base", f"{name}/finetuned/model"])]
    assert len(rows) == 2
    row = rows.set_index("model").loc[f"{name}/finetuned/model"]
    assert row["reviewed records"] == EDITS + APPROVALS and row["fine-tuned from"] == f"{name}/base"
    assert f"mIoU {100 * after['metrics']['overall']['mIoU']:.1f}" in row["scores"]


def test_train_refuses_bad_densescan_options(tmp_path, synth_root, capsys):
    common = ["train", "dense3d", "--config", "cpu-tiny", "--data", str(synth_root), "--out", str(tmp_path)]
    assert core_main([*common, "--densescan", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    (tmp_path / "x.json").write_text("[]")
    assert core_main([*common, "--densescan", str(tmp_path / "x.json"), "--sources", "scanqa"]) == 2
    assert "--sources: unknown scanqa" in capsys.readouterr().err
    assert core_main([*common, "--sources", "none"]) == 2
    assert "needs at least one --densescan" in capsys.readouterr().err
    ross = ["train", "ross3d", "--config", "cpu-tiny", "--data", str(synth_root), "--out", str(tmp_path)]
    assert core_main([*ross, "--densescan", str(tmp_path / "x.json")]) == 2
    assert "for dense3d, not ross3d" in capsys.readouterr().err


def test_the_registry_skips_what_is_not_a_trained_checkpoint(tmp_path):
    root = tmp_path / "models"
    vae = root / "vae"  # a diffusers folder (the shipped VAE): not a model the project trains
    vae.mkdir(parents=True)
    (vae / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    run = root / "run"
    (run / "checkpoints" / "step-2").mkdir(parents=True)  # accelerate states are not versions
    (run / "checkpoints" / "step-2" / "config.json").write_text(json.dumps({"architecture": "Dense3DModel"}))
    (run / "model" / "eval").mkdir(parents=True)
    (run / "model" / "config.json").write_text(json.dumps({"architecture": "Ross3DModel"}))
    (run / "model" / "training.json").write_text("{")  # half written: the config alone still lists it
    (run / "model" / "eval" / "broken.json").write_text("[1, 2")
    (run / "eval").mkdir()
    report = {"task": "scanqa", "metrics": {"overall": {"EM@1": 0.25, "count": 8}}}
    (run / "eval" / "val.json").write_text(json.dumps(report))
    [version] = list_models([root])
    assert version.name == "models/run/model" and version.architecture == "Ross3DModel"
    assert version.samples is None and version.reviewed_records is None
    assert version.scores == {"scanqa:val": {"EM@1": 0.25, "count": 8}}
    assert version.row()["scores"] == "scanqa:val: EM@1 25.0, count 8"


@pytest.mark.browser
def test_the_dashboard_shows_the_model_versions_table(
    finetuned, base, reviewed, pipeline_out, synth_root, monkeypatch
):
    """The app served on 127.0.0.1: the Dashboard's table lists both versions and the reviewed records."""
    from app_server import serve_app
    from test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _browser_or_skip

    from app.context import AppContext

    sync_playwright = _browser_or_skip()
    monkeypatch.setenv("DENSESCAN_MODELS", str(base.parent))
    service = ReviewService(reviewed["url"])
    ctx = AppContext(service, synth_root, pipeline_out, auth=False, local_user="alice")
    with serve_app(ctx) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_role("tab", name="Dashboard").click()
        name = f"{base.parent.name}/finetuned/model"
        page.wait_for_function(
            f"document.querySelector('#dashboard-models')?.innerText.includes('{name}')", timeout=60_000
        )
        text = page.inner_text("#dashboard-models")
        assert f"{base.parent.name}/base" in text and "reviewed records" in text
        row = page.locator("#dashboard-models [role=row]").filter(has_text=name).inner_text()
        assert f"{base.parent.name}/base" in row and str(EDITS + APPROVALS) in row and "mIoU" in row
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#dashboard-models").screenshot(path=str(ARTIFACTS / "dashboard-models.png"))
        browser.close()
