"""`python -m core synth`: write synthetic scenes in ScanNet format plus benchmark annotations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "synth",
        help="write synthetic indoor scenes in ScanNet format plus benchmark annotations",
        description="Generate rooms, render a handheld RGB-D trajectory, and write ScanNet scene folders, "
        "ScanRefer / Multi3DRefer / ScanQA / SQA3D annotations and split files. Resumable.",
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--scenes", type=int, default=6, help="number of scenes (default 6: one per room type)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=240, help="frames per scene (default 240)")
    p.add_argument(
        "--val-from-first",
        type=int,
        metavar="K",
        help="take the val split from the first K scenes (as a K-scene dataset would) and put every later "
        "scene in train: more training rooms, the same val scenes and val files (kept for later runs)",
    )
    p.add_argument(
        "--no-sensor",
        action="store_true",
        help="exact ray-cast depth and colour (no noise, holes, blur, exposure drift)",
    )
    p.add_argument(
        "--preview",
        nargs="?",
        const="",
        metavar="FILE",
        help="also write a contact sheet of frames per scene, colour beside depth "
        "(default: OUT/contact_sheet.jpg)",
    )
    p.set_defaults(run=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from core.synth.dataset import SynthConfig, generate_dataset

    if args.scenes < 1 or args.frames < 1 or (args.val_from_first is not None and args.val_from_first < 1):
        print("error: --scenes, --frames and --val-from-first must be at least 1", file=sys.stderr)
        return 2
    config = SynthConfig(num_frames=args.frames, sensor=not args.no_sensor)
    reports = generate_dataset(args.out, args.scenes, args.seed, config, val_from_first=args.val_from_first)
    done = [r for r in reports if not r["skipped"]]
    print(f"wrote {len(done)} scenes ({len(reports) - len(done)} already there) to {args.out}")
    if args.preview is not None:
        from core.synth.preview import write_contact_sheet

        target = Path(args.preview) if args.preview else args.out / "contact_sheet.jpg"
        sheet = write_contact_sheet(args.out, target)
        print(f"contact sheet: {sheet}")
    return 0
