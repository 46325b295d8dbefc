"""bench/ross3d_ablation.py (the paper's Table 4 in miniature) end to end on the generated test scenes: two
arms, one seed, a tiny preset trained for 2 steps through the real `python -m core train ross3d`
subprocess, scored by the real predict / eval / reconstruct code on the first 3 questions per benchmark;
then a rerun that must start no training and rewrite no result, and one clear error for a bad --data."""

from __future__ import annotations

import copy
import json
import math
import subprocess

import pytest
from ross3d_tiny import PRESET

from bench import ross3d_ablation as ablation

pytestmark = pytest.mark.usefixtures("one_thread")

# the command tests' tiny preset on the three scored benchmarks (2 questions each), with the default box
# rule and one learning rate for every parameter; `--steps` sets the schedule
TINY = copy.deepcopy(PRESET)
TINY["model"]["grounding"].pop("box_rule")
TINY["data"] = {"split": "train", "tasks": ["scanqa", "sqa3d", "scanrefer"], "max_per_task": 2}
TINY["train"].pop("lr_multipliers")


@pytest.mark.slow  # two real training subprocesses, scoring and reconstruction: about a minute
def test_two_arms_train_score_resume_and_refuse_bad_data(synth_root, tmp_path, capsys, monkeypatch):
    preset = tmp_path / "tiny.json"
    preset.write_text(json.dumps(TINY))
    out = tmp_path / "ablation"
    argv = ["--data", str(synth_root), "--out", str(out), "--preset", str(preset), "--steps", "2",
            "--seeds", "0", "--arms", "baseline", "both", "--limit", "3", "--recon-scenes", "1",
            "--recon-steps", "2", "--threads", "1"]  # fmt: skip

    started: list[list[str]] = []
    real_run = subprocess.run

    def spy(command, *args, **kwargs):
        if list(command[1:5]) == ["-m", "core", "train", "ross3d"]:
            started.append(list(command))
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(ablation.subprocess, "run", spy)
    assert ablation.main(argv) == 0
    printed = capsys.readouterr().out
    assert len(started) == 2  # one training process per arm

    results = {}
    for arm, folder, (view, bev) in (("baseline", "baseline-seed0", (False, False)),
                                     ("both", "both-seed0", (True, True))):  # fmt: skip
        run = out / "runs" / folder
        result = json.loads((run / "result.json").read_text())
        results[arm] = result
        assert result["arm"] == arm and result["seed"] == 0 and result["steps"] == 2
        assert set(result["values"]) == {"sqa3d_em", "scanqa_cider", "scanrefer_acc25", "bev_psnr"}
        assert all(math.isfinite(v) for v in result["values"].values()), result["values"]
        assert 0 <= result["values"]["sqa3d_em"] <= 1 and 0 <= result["values"]["scanrefer_acc25"] <= 1
        assert result["counts"] == {"sqa3d": 3, "scanqa": 3, "scanrefer": 3}  # --limit 3, scored in full
        # the run really trained the arm's switches for the asked steps, with the seed in the preset
        used = json.loads((run / "preset.json").read_text())
        assert used["train"]["seed"] == 0 and used["train"]["steps"] == 2
        recipe = json.loads((run / "model" / "training.json").read_text())
        assert (recipe["use_view_recon"], recipe["use_bev_recon"]) == (view, bev)
        assert recipe["steps_done"] == 2
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        if not bev:
            assert all(r["loss_bev"] == 0 and r["loss_view"] == 0 for r in rows)
        else:
            assert any(r["loss_bev"] > 0 for r in rows)
        # the cut ground truth holds exactly the predicted questions, and eval found none missing
        for task in ("sqa3d", "scanqa", "scanrefer"):
            report = json.loads((run / "eval" / f"{task}-eval.json").read_text())
            assert report["num_samples"] == 3 and report["num_missing"] == 0, task
        scene = result["reconstruction"]["scenes"][0]
        scores = json.loads((run / "reconstruct" / scene / "scores.json").read_text())
        assert scores["bev_psnr"] == pytest.approx(result["values"]["bev_psnr"])

    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| arm | n |"))
    table = lines[header:]
    assert "SQA3D EM" in table[0] and "ScanQA CIDEr" in table[0] and "ScanRefer Acc@0.25" in table[0]
    assert "BEV PSNR (dB)" in table[0]
    assert table[2].startswith("| baseline | 1 | ") and table[3].startswith("| both | 1 | ")
    em = 100 * results["both"]["values"]["sqa3d_em"]
    assert f"{em:.2f} ± –" in table[3]
    document = json.loads((out / "ablation.json").read_text())
    assert document["steps"] == 2 and document["preset"] == str(preset) and document["limit"] == 3
    assert document["git_commit"] and document["date"] and "--arms baseline both" in document["command"]
    assert [r["arm"] for r in document["runs"]] == ["baseline", "both"]
    assert document["summary"]["both"]["bev_psnr"]["mean"] == pytest.approx(
        results["both"]["values"]["bev_psnr"]
    )

    # rerun: resumes, i.e. starts no training process and rewrites no result
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}
    started.clear()
    assert ablation.main(argv) == 0
    assert started == [] and "done before" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")} == stamps
    # other settings in the same folder are refused, not mixed in
    assert ablation.main([*argv, "--limit", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "other settings" in err
    assert ablation.main([*argv, "--steps", "3"]) == 2  # another preset / --steps: refused too
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "another preset or --steps" in err and started == []

    # a bad --data: one clear line, nothing trained, nothing written
    missing = tmp_path / "nowhere"
    assert ablation.main([*argv[:1], str(missing), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    expected = f"{missing}: dataset root not found (a folder with scans/, annotations/ and split files)"
    assert err == f"error: {expected}"
    assert started == [] and not (tmp_path / "bad").exists()


def test_a_failed_training_is_one_clear_error_naming_its_log(synth_root, tmp_path, capsys):
    broken = json.loads(json.dumps(TINY))
    broken["data"]["no_such_key"] = 1  # `train ross3d` refuses it: the subprocess exits 2
    preset = tmp_path / "broken.json"
    preset.write_text(json.dumps(broken))
    out = tmp_path / "ablation"
    argv = ["--data", str(synth_root), "--out", str(out), "--preset", str(preset), "--steps", "2",
            "--seeds", "0", "--arms", "+bev", "--limit", "3"]  # fmt: skip
    assert ablation.main(argv) == 2
    err = capsys.readouterr().err.strip()
    log = out / "runs" / "bev-seed0" / "train.log"
    assert err.startswith("error: +bev seed 0: training failed (exit status 2): ") and "\n" not in err
    assert "no_such_key" in err and err.endswith(f"(log: {log})")
    assert "no_such_key" in log.read_text() and not (out / "runs" / "bev-seed0" / "result.json").exists()


def test_table_is_mean_and_sample_std_over_seeds():
    runs = [
        {"arm": arm, "seed": seed, "values": {"sqa3d_em": em, "scanqa_cider": 0.5, "scanrefer_acc25": 0.25,
                                              "bev_psnr": psnr}}
        for arm, seed, em, psnr in (("both", 0, 0.1, 10.0), ("both", 1, 0.3, 14.0), ("baseline", 0, 0.2, 8.0))
    ]  # fmt: skip
    table = ablation.summary(runs, ["baseline", "+view", "both"])
    assert list(table) == ["baseline", "both"]  # an arm without runs is left out, the order is the arms'
    assert table["both"]["sqa3d_em"]["mean"] == pytest.approx(0.2)
    assert table["both"]["sqa3d_em"]["std"] == pytest.approx(math.sqrt(0.02))  # sample std (n - 1)
    assert table["both"]["bev_psnr"]["std"] == pytest.approx(math.sqrt(8.0)) and table["baseline"]["n"] == 1
    lines = ablation.format_table(table).splitlines()
    assert lines[2] == "| baseline | 1 | 20.00 ± – | 50.00 ± – | 25.00 ± – | 8.00 ± – |"
    assert lines[3] == "| both | 2 | 20.00 ± 14.14 | 50.00 ± 0.00 | 25.00 ± 0.00 | 12.00 ± 2.83 |"


def test_a_run_started_from_another_checkout_still_resumes(tmp_path):
    """The notes name the checkout a run was started from; they cannot change its numbers, so a run
    begun in a worktree resumes from the main checkout. The steps or a switch of the arm can."""
    base = {**copy.deepcopy(TINY), "source": "/a/worktree/cpu-tiny.json"}
    here = ablation.arm_preset(base, "both", 1, 5, tmp_path / "cache")
    there = ablation.arm_preset({**base, "source": "/elsewhere/cpu-tiny.json"}, "both", 1, 5, tmp_path / "c2")
    assert here["notes"] != there["notes"]
    assert ablation._comparable(here) == ablation._comparable(there)
    for arm, steps in (("both", 6), ("+bev", 5)):
        other = ablation.arm_preset(base, arm, 1, steps, tmp_path)
        assert ablation._comparable(here) != ablation._comparable(other)
