"""What Ross3D's vision stage learned, on frames of scenes it never saw.

    python bench/ross3d_vision_stage.py --model RUN/vision/model --data ROOT [--split val] [--json OUT]

Labels every frame of the split the way stage 1 trains (`core.models.common.vision_pretrain`: the class
of the object under each token, the token's mean colour) and prints, beside the blind baselines of the
same tokens: token accuracy against always answering the train split's most common class, mean per-class
recall (where that answer scores 1 / classes present), and the colour L1 against predicting the mean
colour of the train frames.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.datasets.refseg import read_split  # noqa: E402
from core.data.datasets.vision_frames import VisionFramesDataset  # noqa: E402
from core.models.common.categories import IGNORE  # noqa: E402
from core.models.common.vision_pretrain import VisionPretrainer  # noqa: E402


def recall_per_class(predicted: torch.Tensor, target: torch.Tensor, classes: int) -> float:
    """Mean over the classes present in `target` of the fraction of their tokens predicted right."""
    recalls = [
        float((predicted[target == c] == c).float().mean()) for c in range(classes) if (target == c).any()
    ]
    return sum(recalls) / len(recalls)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="the stage-1 folder (RUN/vision/model)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = VisionPretrainer.from_pretrained(args.model).eval()
    classes = len(model.config.categories) + 1
    train = VisionFramesDataset(args.data, read_split(args.data, "train"), model.encoder, model.config, False)
    test = VisionFramesDataset(
        args.data, read_split(args.data, args.split), model.encoder, model.config, False
    )
    labelled_train = train.classes[train.classes != IGNORE]
    majority = int(torch.bincount(labelled_train, minlength=classes).argmax())
    mean_colour = train.colours.reshape(-1, 3).mean(0)
    with torch.no_grad():
        tokens = torch.cat([model.encoder(test.pixels[i : i + 64]) for i in range(0, len(test), 64)])
        predicted = model.classes(tokens).argmax(-1)
        colour = model.colour(tokens)
    named = test.classes != IGNORE
    target, guess = test.classes[named], predicted[named]
    rows = {
        "model": {
            "accuracy": float((guess == target).float().mean()),
            "class_recall": recall_per_class(guess, target, classes),
            "colour_l1": float((colour - test.colours).abs().mean()),
        },
        "blind: train's most common class / mean colour": {
            "accuracy": float((target == majority).float().mean()),
            "class_recall": recall_per_class(torch.full_like(target, majority), target, classes),
            "colour_l1": float((mean_colour - test.colours).abs().mean()),
        },
    }
    print(f"{args.split}: {len(test)} frames, {int(named.sum())} labelled tokens, {classes} classes")
    print(f"| {'':<48} | token accuracy | mean class recall | colour L1 |")
    for name, r in rows.items():
        print(
            f"| {name:<48} | {100 * r['accuracy']:14.1f} | {100 * r['class_recall']:17.1f} "
            f"| {r['colour_l1']:9.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
