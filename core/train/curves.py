"""`metrics.jsonl` and the loss-curve PNG written beside every training run."""

from __future__ import annotations

import json
from pathlib import Path

from core.atomic import atomic_write_text


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after `step`: a resumed run re-logs them, and a curve must not show them twice."""
    rows = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def append_metrics(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def plot_curves(metrics: Path, png: Path) -> Path | None:
    """Every `loss*` series of the run against the step, one PNG (matplotlib's Agg backend, no display)."""
    rows = read_metrics(metrics)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k for r in rows for k in r if k.startswith("loss")})
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name in names:
        points = [(r["step"], r[name]) for r in rows if name in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name, linewidth=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_yscale("log" if all(r.get("loss", 1) > 0 for r in rows) else "linear")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png)
    return png
