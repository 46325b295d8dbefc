"""Where Ross3D's grounding loses the object's class: three readers of the same ground-truth boxes.

    python bench/ross3d_object_probe.py --run RUN --data ROOT [--split val] [--json OUT]

RUN is a `python -m core train ross3d` output folder with class agreement on: `RUN/model` (stage 2) and
`RUN/vision/model` (the vision stage, whose class head stage 2 does not keep). For every ground-truth box
of the train split and of `--split` (boxes no visual token falls into are left out), the box's class is
read three ways and compared with its raw label (the grounding vocabulary, `core.models.common.categories`):

- the stage-2 object classifier of the grounding head (what the class agreement uses);
- a vote of the vision stage's own class head: its per-token class probabilities averaged over the box's
  member tokens (no training on boxes at all);
- a linear probe (softmax regression, standardised features, 500 Adam steps) on the mean of the frozen
  tower's token features over the box, trained on the train split's boxes;
- the box's extent alone (`grounding.box_size_code`): the class of the nearest train box by log extent,
  which says how much `grounding.size_feature` can add on this data.

Beside them, the train split's most common box class. Train-box accuracy is printed too: a reader that is
far better on train boxes than on held-out ones has learned the train objects, not the classes. Why it
exists: grounding sits at half the class-name oracle, and this says whether the tower, the classifier or
the amount of training objects is the limit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.datasets.refseg import read_split  # noqa: E402
from core.data.datasets.ross3d_samples import SceneStore  # noqa: E402
from core.models.common.categories import IGNORE, class_ids  # noqa: E402
from core.models.common.vision_pretrain import VisionPretrainer  # noqa: E402
from core.models.errors import ModelError  # noqa: E402
from core.models.ross3d.grounding import box_size_code  # noqa: E402
from core.models.ross3d.modeling_ross3d import Ross3DModel  # noqa: E402
from core.models.ross3d.processor_ross3d import Ross3DSample  # noqa: E402


def read_boxes(
    model: Ross3DModel, tower: VisionPretrainer, root: Path, split: str
) -> dict[str, torch.Tensor]:
    """Per ground-truth box of the split's scenes: the mean tower feature, the label, and the classes read
    by the stage-2 object classifier and by the tower's class-head vote."""
    vocabulary = model.config.grounding.categories
    store = SceneStore(root, model.image, None, False, False, False, 2)
    keys = ("features", "label", "classifier", "vote", "size")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for scene_id in read_split(root, split):
        scene = store.get(scene_id)
        sample = Ross3DSample(
            scene_id=scene_id,
            task="scanrefer",
            question="",
            answer=None,
            frames=scene.frames,
            proposals=scene.proposals,
            proposal_ids=list(scene.proposal_ids),
            proposal_labels=list(scene.proposal_labels),
        )
        tokens = model._visual([sample], [None])[0]
        boxes = scene.proposals.float()
        members = model._membership(sample, tokens, boxes).float()  # [N, K]
        objects, _ = model._box_features(sample, tokens, boxes)
        head = model.grounding
        parts["classifier"].append(head.object_class(objects.to(head.no_object.dtype)).argmax(-1))
        raw = tower.encoder(scene.frames.pixels.to(torch.float32)).flatten(0, 1)  # [F*P, D], frames in order
        counts = members.sum(0).clamp(min=1.0)[:, None]
        parts["vote"].append(((members.T @ tower.classes(raw).softmax(-1)) / counts).argmax(-1))
        parts["features"].append((members.T @ raw) / counts)
        parts["size"].append(box_size_code(boxes))
        label = torch.tensor(class_ids(scene.proposal_labels, vocabulary))
        label[members.sum(0) == 0] = IGNORE
        parts["label"].append(label)
    return {key: torch.cat(value) for key, value in parts.items()}


def linear_probe(features: torch.Tensor, labels: torch.Tensor, classes: int, steps: int = 500):
    """Softmax regression on standardised features; returns a function features -> predicted class."""
    torch.manual_seed(0)
    mean, std = features.mean(0), features.std(0) + 1e-6
    layer = torch.nn.Linear(features.shape[1], classes)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2, weight_decay=1e-4)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(layer((features - mean) / std), labels).backward()
            optimizer.step()
    return lambda x: layer((x - mean) / std).argmax(-1)


def nearest_label(
    codes: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor, exclude_self: bool
) -> torch.Tensor:
    """The label of each code's nearest reference code (Euclidean); `exclude_self` when codes are the
    reference (train boxes: leave-one-out, else every box finds itself)."""
    distance = torch.cdist(codes, reference)
    if exclude_self:
        distance.fill_diagonal_(float("inf"))
    return labels[distance.argmin(1)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a train ross3d output folder (model/, vision/)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with torch.no_grad():  # not torch.set_grad_enabled(False): a caller (a test) may train afterwards
        rows = score(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def score(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The table's rows (printed): per split, each reader's accuracy in percent and the box count."""
    model = Ross3DModel.from_pretrained(args.run / "model").eval()
    if model.grounding.object_class is None:
        raise ModelError(args.run / "model", "grounding.class_match is off: there is no object classifier")
    tower = VisionPretrainer.from_pretrained(args.run / "vision" / "model").eval()
    if list(tower.config.categories) != list(model.config.grounding.categories):
        raise ModelError(args.run / "vision" / "model", "the vision stage's classes differ from grounding's")
    train = read_boxes(model, tower, args.data, "train")
    test = read_boxes(model, tower, args.data, args.split)
    seen = train["label"] != IGNORE
    probe = linear_probe(train["features"][seen], train["label"][seen], len(tower.config.categories) + 1)
    common = int(torch.bincount(train["label"][seen]).argmax())
    train_sizes, train_labels = train["size"][seen], train["label"][seen]
    rows: dict[str, dict[str, float]] = {}
    for name, boxes in (("train", train), (args.split, test)):
        keep = boxes["label"] != IGNORE
        label = boxes["label"][keep]
        guesses = {
            "stage-2 object classifier": boxes["classifier"][keep],
            "vision stage class-head vote": boxes["vote"][keep],
            "linear probe on mean tower features": probe(boxes["features"][keep]),
            "box extent alone: class of the nearest train box": nearest_label(
                boxes["size"][keep], train_sizes, train_labels, exclude_self=name == "train"
            ),
            "blind: train's most common class": torch.full_like(label, common),
        }
        rows[name] = {k: 100 * float((g == label).float().mean()) for k, g in guesses.items()}
        rows[name]["boxes"] = int(keep.sum())
    print(f"| box class accuracy | train ({rows['train']['boxes']} boxes) | {args.split} "
          f"({rows[args.split]['boxes']} boxes) |")  # fmt: skip
    print("|---|---|---|")
    for reader in rows["train"]:
        if reader != "boxes":
            print(f"| {reader} | {rows['train'][reader]:.1f} | {rows[args.split][reader]:.1f} |")
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
