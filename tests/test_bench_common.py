"""bench/_common.py, the helpers the bench scripts share, through the scripts that use it: the per-preset
command line (one real subprocess per row, a failed row named on stderr, the `--json` file), the aligned
tables of bench_dense3d / bench_ross3d and the mean ± sample std of the Dense3D data ablation. The expected
strings are what the scripts printed before the helpers were shared."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script(name: str):
    return importlib.import_module(f"bench.{name}")


ROWS = [
    {"preset": "cpu-tiny", "device": "cpu x2", "batch": 2, "step_s": 0.1234, "samples_per_s": 16.2,
     "infer_s_per_query": 0.5, "answer_s": 0.7, "recon_s": 2.345, "frames": 8, "peak_mem_mb": 1234.4,
     "params_m": 3.21, "checkpoint_mb": 12.3, "mfu": None},
    {"preset": "cluster-like", "device": "NVIDIA H200", "batch": 16, "step_s": 1.5, "samples_per_s": 10.67,
     "infer_s_per_query": 0.05, "answer_s": 0.7, "recon_s": 2.345, "frames": 8, "peak_mem_mb": 45678,
     "params_m": 678.9, "checkpoint_mb": 2345.6, "mfu": 0.1234},
]  # fmt: skip


TABLES = {  # script -> its table of ROWS: a title with the load, columns, MFU in percent or "-"
    "bench_dense3d": [
        "dense3d bench; load average: 1.00",
        "preset        device       batch  step s  samples/s  infer s/query"
        "  peak MB  params M  ckpt MB    MFU",
        "-" * 101,
        "cpu-tiny      cpu x2           2   0.123      16.20          0.500"
        "     1234      3.21     12.3      -",
        "cluster-like  NVIDIA H200     16   1.500      10.67          0.050"
        "    45678    678.90   2345.6  12.3%",
    ],
    "bench_ross3d": [
        "ross3d bench; load average: 1.00",
        "preset        device       frames  batch  step s  samples/s  answer s  recon s"
        "  peak MB  params M  ckpt MB    MFU",
        "-" * 113,
        "cpu-tiny      cpu x2            8      2   0.123      16.20     0.700     2.35"
        "     1234      3.21     12.3      -",
        "cluster-like  NVIDIA H200       8     16   1.500      10.67     0.700     2.35"
        "    45678    678.90   2345.6  12.3%",
    ],
}


@pytest.mark.parametrize("script", sorted(TABLES))
def test_preset_tables_are_aligned_with_the_load_and_mfu_in_percent(script):
    assert _script(script).format_table(ROWS, "load average: 1.00").splitlines() == TABLES[script]


FAKE_BENCH = """
import sys
sys.path.insert(0, {repo!r})
from bench._common import preset_bench_main


def measure_row(name, data, steps, queries, peak_tflops):
    if name == "broken":
        raise RuntimeError("this row cannot be measured")
    return {{"preset": name, "data": str(data), "steps": steps, "queries": queries, "peak": peak_tflops}}


def format_table(rows, load):
    return "fake bench; " + load + "\\n" + "\\n".join(f"{{r['preset']}} {{r['steps']}}" for r in rows)


sys.exit(preset_bench_main(None, __file__, "fake", measure_row, format_table, steps=3, queries_help="rows"))
"""


def test_each_preset_row_runs_in_its_own_process_and_a_failed_row_is_one_line(tmp_path):
    script = tmp_path / "fake_bench.py"
    script.write_text(FAKE_BENCH.format(repo=str(REPO)))
    out = tmp_path / "rows.json"
    command = [sys.executable, str(script), "--data", str(tmp_path), "--presets", "tiny", "broken", "other"]
    done = subprocess.run(
        [*command, "--queries", "2", "--peak-tflops", "100", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr  # one of three rows failed
    assert done.stderr.strip() == "broken: failed (RuntimeError: this row cannot be measured)"
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("fake bench; ") and "load average" in lines[0]
    assert lines[1:] == ["tiny 3", "other 3"]  # the default --steps reached each row's process
    document = json.loads(out.read_text())
    assert set(document) == {"uptime", "rows"} and document["uptime"] in lines[0]
    assert document["rows"] == [
        {"preset": name, "data": str(tmp_path), "steps": 3, "queries": 2, "peak": 100.0}
        for name in ("tiny", "other")
    ]


def test_data_ablation_table_is_mean_and_sample_std_with_zero_for_one_seed():
    ablation = _script("dense3d_data_ablation")
    samples = {"scanrefer": {"samples": 10}}
    runs = [
        {"arm": arm, "seed": seed, "train_samples": samples,
         "metrics": {"overall": {"mIoU": miou, "count": 5}, "unique": {"mIoU": miou / 2}}}
        for arm, seed, miou in (("short+dense", 0, 0.25), ("short", 0, 0.1), ("short", 1, 0.3))
    ]  # fmt: skip
    table = ablation.summary(runs)
    assert list(table) == ["short", "short+dense"]  # the arms' order, not the runs'
    assert table["short"]["overall"]["mIoU_mean"] == pytest.approx(0.2)
    assert table["short"]["overall"]["mIoU_std"] == pytest.approx(0.02**0.5)  # sample std (n - 1)
    assert table["short+dense"]["overall"]["mIoU_std"] == 0.0 and "multiple" not in table["short"]
    assert ablation.format_table(table, 7, 5).splitlines() == [
        "short-query 5 eval queries, 7 steps per run; mIoU x100, mean ± std over seeds",
        "arm           seeds         overall          unique        multiple  train samples",
        "short             2   20.00 ± 14.14   10.00 ±  7.07               -  scanrefer 10",
        "short+dense       1   25.00 ±  0.00   12.50 ±  0.00               -  scanrefer 10",
    ]
