"""The result of one evaluation: grouped metrics, per-sample scores, what was missing, and notes.

`metrics` maps a group (a split like "unique", a question type, an IoU setting, or "overall") to its
numbers: fractions in [0, 1] (CIDEr may exceed 1) and integer counts. The table prints fractions x100,
as papers do; the JSON keeps them as computed. `samples` holds one dict per ground-truth sample (key,
prediction, target and scores) for failure analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json


@dataclass
class EvalReport:
    task: str
    metrics: dict[str, dict[str, float | int]]
    samples: list[dict[str, Any]]
    missing: list[str] = field(default_factory=list)  # ground-truth keys with no prediction
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "inputs": self.inputs,
            "metrics": self.metrics,
            "num_samples": len(self.samples),
            "num_missing": len(self.missing),
            "missing": self.missing,
            "notes": self.notes,
            "samples": self.samples,
        }

    def write(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_json())

    def format_table(self) -> str:
        """Metrics as rows, groups as columns; fractions shown x100."""
        groups = list(self.metrics)
        names: list[str] = []
        for values in self.metrics.values():
            names += [n for n in values if n not in names]
        cells = [[""] + groups]
        for name in names:
            row = [name]
            for group in groups:
                value = self.metrics[group].get(name)
                if value is None:
                    row.append("-")
                elif isinstance(value, int):
                    row.append(str(value))
                else:
                    row.append(f"{100 * value:.2f}")
            cells.append(row)
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
        lines = [
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in cells
        ]
        lines.insert(1, "-" * len(lines[0]))
        header = f"{self.task}: {len(self.samples)} samples, {len(self.missing)} without a prediction (x100)"
        return "\n".join([header, *lines, *(f"note: {n}" for n in self.notes)])
