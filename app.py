"""`python app.py`: the DenseScan app.

With no arguments it builds the embedded demo once (synthetic ScanNet-format scenes under `.demo/`) and
serves it. The review UI itself lands with the app issue; until then this command builds the demo data
and prints what it holds, so a fresh machine shows the data path end to end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / ".demo"
DEMO_SCENES = 6  # one per room type
DEMO_SEED = 0


def build_demo(root: Path = DEMO_DIR) -> Path:
    """Generate the embedded demo dataset (resumable: finished scenes are kept)."""
    from core.scene.synth.dataset import generate_dataset

    print(f"building the embedded demo in {root} (once; later runs reuse it)", flush=True)
    generate_dataset(root, DEMO_SCENES, seed=DEMO_SEED)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, help="a ScanNet-format dataset root (default: the embedded demo)"
    )
    args = parser.parse_args(argv)

    from core.scene import cli as scene_cli

    root = args.data or build_demo()
    print("scenes:", flush=True)
    return scene_cli.run_scenes(
        argparse.Namespace(scans=root, frames=None, labels=None, scenes=None, json=False)
    )


if __name__ == "__main__":
    sys.exit(main())
