"""`python -m core annotate`: output format, resumability (kill -9 included), failures, time limits, stats."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from misbehaving_openai import CAPTION, MisbehavingServer

from core.__main__ import main
from core.data.densescan import read_densescan
from core.data.scanrefer import read_scanrefer

SCENE = "scene0001_00"
ROOT = Path(__file__).resolve().parents[1]


def _files(out: Path) -> dict[str, bytes]:
    """Every output file but the timings (done-markers), keyed by relative path."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "done.json"
    }


@pytest.fixture(scope="module")
def finished(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("annotate-cli") / "out"
    assert (
        main(["annotate", "--scans", str(synth_root), "--out", str(out), "--scenes", SCENE, "--no-progress"])
        == 0
    )
    return out


def test_densescan_json_reads_through_core_data(finished: Path):
    records = read_densescan(finished / "densescan.json")
    assert {r.level for r in records} == {"object", "frame", "scene", "scenario"}
    assert all(r.scene_id == SCENE and r.status in ("accepted", "flagged", "rejected") for r in records)
    assert all(r.source == "densescan-pipeline/grounded" and 0 <= r.confidence <= 1 for r in records)
    scenario = [r for r in records if r.level == "scenario"]
    assert all(r.question and r.answer and r.answer_object_ids for r in scenario)
    keys = [(r.level, r.object_id, r.ann_id) for r in records]
    assert len(keys) == len(set(keys))
    scanrefer = read_scanrefer(finished / "densescan.json")  # a ScanRefer loader reads it unchanged
    assert len(scanrefer) == len(records) and all(r.token for r in scanrefer)


def test_rerun_skips_finished_scenes(finished: Path, synth_root: Path, capsys):
    before = (finished / "scenes" / SCENE / "annotation.json").stat().st_mtime_ns
    assert (
        main(
            [
                "annotate",
                "--scans",
                str(synth_root),
                "--out",
                str(finished),
                "--scenes",
                SCENE,
                "--no-progress",
            ]
        )
        == 0
    )
    assert (finished / "scenes" / SCENE / "annotation.json").stat().st_mtime_ns == before
    table = capsys.readouterr().out
    assert "done earlier" in table and "words/caption" in table


@pytest.mark.slow  # default-suite time; run with `pytest -m slow`
def test_kill_and_resume_gives_the_same_output(finished: Path, synth_root: Path, tmp_path: Path):
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "core",
        "annotate",
        "--scans",
        str(synth_root),
        "--out",
        str(out),
        "--scenes",
        SCENE,
        "--no-progress",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    crops = out / "scenes" / SCENE / "crops"
    while time.monotonic() < deadline and process.poll() is None:
        if crops.is_dir() and len(list(crops.glob("*.jpg"))) >= 20:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "scenes" / SCENE / "done.json").exists()
    # the kill may land inside an atomic write (here, planted where one would be): the resume removes it
    (crops / ".0_0.jpg.abc123.tmp").write_bytes(b"half a jpeg")
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    leftovers = [p for p in out.rglob("*.tmp")]
    assert not leftovers
    assert _files(out) == _files(finished)


def test_failed_scene_is_recorded_and_the_run_goes_on(synth_root: Path, tmp_path: Path, capsys):
    scans = tmp_path / "scans"
    broken = scans / "scene0999_00"
    broken.mkdir(parents=True)
    shutil.copy(
        synth_root / "scans" / SCENE / f"{SCENE}_vh_clean_2.ply", broken / "scene0999_00_vh_clean_2.ply"
    )
    (broken / "scene0999_00_vh_clean_2.0.010000.segs.json").write_text("{not json")
    empty = scans / "scene0998_00"  # a mesh and nothing else: no objects, no frames, still a narrative
    empty.mkdir()
    shutil.copy(
        synth_root / "scans" / SCENE / f"{SCENE}_vh_clean_2.ply", empty / "scene0998_00_vh_clean_2.ply"
    )
    out = tmp_path / "out"
    assert main(["annotate", "--scans", str(scans), "--out", str(out), "--no-progress"]) == 1
    failure = (out / "failed" / "scene0999_00.json").read_text()
    assert "malformed JSON" in failure
    assert (out / "scenes" / "scene0998_00" / "done.json").is_file()
    assert "FAILED" in capsys.readouterr().out
    assert [r.level for r in read_densescan(out / "densescan.json")] == ["scene"]


def test_bad_arguments_give_clear_errors(tmp_path: Path, synth_root: Path, capsys):
    assert main(["annotate", "--scans", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "scans folder not found" in capsys.readouterr().err
    assert main(["annotate", "--stats", str(tmp_path)]) == 2
    base = ["annotate", "--scans", str(synth_root), "--out", str(tmp_path / "o")]
    bad = [("--timeout", "0"), ("--timeout", "nan"), ("--retries", "-1"), ("--scene-timeout", "-5")]
    for flag, value in bad:
        assert main([*base, flag, value]) == 2
        assert f"error: {flag} must be" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _openai(server: MisbehavingServer) -> list[str]:
    return ["--captioner", "openai", "--api-base", server.url, "--model", "any", "--no-progress"]


def test_unusable_replies_fail_the_scene_and_a_rerun_asks_again(synth_root: Path, tmp_path: Path, capsys):
    """A caption cut at max_tokens is never written or cached; a rerun against a healthy server asks anew."""
    out = tmp_path / "out"
    args = ["annotate", "--scans", str(synth_root), "--out", str(out), "--scenes", SCENE, "--top-k", "1"]
    with MisbehavingServer() as server:
        server.set("length")
        args += ["--scene-timeout", "0"]  # in this process: quicker; the worker path is tested below
        assert main([*args, *_openai(server), "--retries", "1"]) == 1
        failure = (out / "failed" / f"{SCENE}.json").read_text()
        assert "gave up after 2 attempts" in failure and "finish_reason 'length'" in failure
        assert "FAILED" in capsys.readouterr().out
        # retried (the message above names the attempts); requests in flight when the scene failed may
        # not have had their second try, so the count need not be even
        assert server.requests >= 2
        assert not list((out / "cache").rglob("*.txt"))
        assert not (out / "scenes" / SCENE / "done.json").exists()
        assert read_densescan(out / "densescan.json") == []

        server.set("healthy")
        assert main([*args, *_openai(server)]) == 0
        assert server.requests > 10  # asked again, not rebuilt from a cache of truncated answers
    assert not (out / "failed" / f"{SCENE}.json").exists()
    records = read_densescan(out / "densescan.json")
    assert records and all(r.description.strip() for r in records)
    assert any(r.description == CAPTION for r in records if r.level == "frame")


def test_a_scene_over_its_time_limit_is_recorded_and_the_run_goes_on(synth_root: Path, tmp_path: Path):
    """A captioner that never answers (within a long --timeout) cannot hold the run past --scene-timeout."""
    out = tmp_path / "out"
    scenes = ["scene0000_00", SCENE]
    args = ["annotate", "--scans", str(synth_root), "--out", str(out), "--scenes", *scenes, "--top-k", "1"]
    with MisbehavingServer() as server:
        server.set("hang")
        start = time.monotonic()
        assert main([*args, *_openai(server), "--timeout", "600", "--scene-timeout", "4"]) == 2
        elapsed = time.monotonic() - start
    assert elapsed < 40
    for scene in scenes:  # the second scene ran after the first one's worker was stopped
        failure = (out / "failed" / f"{scene}.json").read_text()
        assert "exceeded the time limit of 4 s" in failure
        assert not (out / "scenes" / scene / "done.json").exists()


def test_stats(finished: Path, capsys):
    assert main(["annotate", "--stats", str(finished)]) == 0
    text = capsys.readouterr().out
    assert "vocabulary" in text and "captions per object" in text and "scenario" in text


@pytest.mark.slow  # default-suite time; run with `pytest -m slow`
def test_workers_give_the_same_output(finished: Path, synth_root: Path, tmp_path: Path):
    out = tmp_path / "out"
    args = ["annotate", "--scans", str(synth_root), "--out", str(out), "--workers", "2", "--no-progress"]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "scenes").iterdir()) == ["scene0000_00", SCENE]
    mine = {k: v for k, v in _files(out).items() if k.startswith(f"scenes/{SCENE}/")}
    assert mine == {k: v for k, v in _files(finished).items() if k.startswith("scenes/")}
