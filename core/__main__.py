"""`python -m core <command>`: every job of the core package is one command here."""

from __future__ import annotations

import argparse
import sys

from core.annotate import cli as annotate_cli
from core.annotate import factcheck_cli
from core.eval import cli as eval_cli
from core.eval import predict_cli
from core.models.ross3d import reconstruct_cli
from core.scene import cli as scene_cli
from core.serve import cli as serve_cli
from core.synth import cli as synth_cli
from core.train import cli as train_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="DenseScan core: scenes, synthetic data, annotation pipeline, evaluation.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    scene_cli.register(commands)
    synth_cli.register(commands)
    eval_cli.register(commands)
    annotate_cli.register(commands)
    factcheck_cli.register(commands)
    serve_cli.register(commands)
    train_cli.register(commands)
    predict_cli.register(commands)
    reconstruct_cli.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
