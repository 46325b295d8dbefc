"""The training scripts' defaults reproduce the checkpoints they shipped: running a script with no
environment variables must rebuild the data the shipped model was trained on."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def script_defaults(script: Path, prefix: str) -> tuple[int, int]:
    """The room counts the script uses when the caller sets nothing: its own `scenes=` / `extra=` lines,
    evaluated by bash with the variables unset."""
    lines = [line for line in script.read_text().splitlines() if line.startswith(("scenes=", "extra="))]
    assert len(lines) == 2, f"{script}: expected one scenes= and one extra= line, found {lines}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    out = subprocess.run(["bash", "-c", "\n".join(lines + ['echo "$scenes $extra"'])], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.parametrize("model", ["dense3d", "ross3d"])
def test_script_defaults_are_the_shipped_recipe(model):
    shipped = json.loads((ROOT / "assets" / model / "data.json").read_text())
    script = ROOT / shipped["script"]
    assert script.name == f"train_default_{model}.sh"
    scenes, extra = script_defaults(script, f"{model.upper()}_")
    assert (scenes, extra) == (shipped["scenes"], shipped.get("extra_train_scenes", 0))
    assert shipped["data_seed"] == 0  # the scripts' default seed argument
    assert 'seed=${2:-0}' in script.read_text()
