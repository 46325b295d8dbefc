"""Where does Dense3D's mask head get stuck? Train the query decoder alone, with an oracle query.

The question is not "does the LLM understand the sentence" but the step below it: given superpoint
features of a trained U-Net (stage 1 of `python -m core train dense3d`) and a query that names the target's
class exactly (a learned embedding of the ScanRefer object name: no language at all), how fast does the
decoder learn to segment the target? If even this oracle learns slowly, no LLM on top can do better.

    python bench/dense3d_oracle_probe.py --data DIR --backbone RUN/backbone/model --cache RUN/scene_cache \
        --features unet|unet+descriptors|semantic-oracle [--steps 600 --batch 8 --lr 2e-3 --layers 3]

`semantic-oracle` replaces the U-Net features by the one-hot ground-truth NYU40 class of each superpoint
(an upper bound on what semantic features could give). Prints mean IoU (threshold 0.5) on train and val
samples every `--every` steps, and the share of val samples with IoU >= 0.5.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from core.data.datasets import SceneCache, SceneCacheConfig, SceneDataset, collate, load_samples
from core.models.common.backbone_pretrain import BackbonePretrainer
from core.models.common.pooling import superpoint_descriptors, superpoint_mean
from core.models.dense3d.loss import SegLoss
from core.models.dense3d.query_decoder import QueryDecoder, QueryDecoderConfig

FEATURES = ("unet", "unet+descriptors", "semantic-oracle")


def scene_features(backbone: BackbonePretrainer, cache: SceneCache, scene_id: str, kind: str):
    """(superpoint features [S, C], centres [S, 3], the cached scene) of one scene."""
    batch = collate([SceneDataset([scene_id], cache)[0]])
    ids = batch.superpoint_ids
    count = int(ids.max()) + 1
    if kind == "semantic-oracle":
        onehot = nn.functional.one_hot(batch.semantic.clamp(0, 40), 41).float()
        feats = superpoint_mean(onehot, ids, count)
    else:
        with torch.no_grad():
            feats = superpoint_mean(backbone.point_features(batch), ids, count)
        if kind == "unet+descriptors":
            feats = torch.cat([feats, superpoint_descriptors(batch.xyz, batch.rgb, ids, count)], dim=1)
    return feats, superpoint_mean(batch.xyz, ids, count), cache.get(scene_id)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="dataset root (python -m core synth layout)")
    p.add_argument("--backbone", type=Path, required=True, help="stage-1 folder: RUN/backbone/model")
    p.add_argument("--cache", type=Path, required=True, help="scene cache folder (RUN/scene_cache)")
    p.add_argument("--voxel-size", type=float, default=0.05, help="as in the preset (cpu-tiny: 0.05)")
    p.add_argument("--features", choices=FEATURES, default="unet")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    backbone = BackbonePretrainer.from_pretrained(args.backbone).eval()
    cache = SceneCache(args.data, args.cache, SceneCacheConfig(voxel_size=args.voxel_size))
    train = [s for s in load_samples(args.data, "train", ("scanrefer",)) if s.target_ids]
    val = [s for s in load_samples(args.data, "val", ("scanrefer",)) if s.target_ids]
    start = time.perf_counter()
    scenes = {
        sid: scene_features(backbone, cache, sid, args.features) for sid in {s.scene_id for s in train + val}
    }
    print(f"features of {len(scenes)} scenes ({args.features}) in {time.perf_counter() - start:.0f} s")
    targets = {
        s.key: torch.from_numpy(sc.superpoint_mask(sc.point_mask(s.target_ids))).float()
        for s in train + val
        for sc in [scenes[s.scene_id][2]]
    }
    names = sorted({s.object_name for s in train + val})
    name_id = {n: i for i, n in enumerate(names)}
    width = next(iter(scenes.values()))[0].shape[1]
    config = QueryDecoderConfig(
        in_channels=width,
        d_model=64,
        num_heads=4,
        num_layers=args.layers,
        ffn_dim=128,
        text_attention=False,
        positions=True,
    )
    decoder, query = QueryDecoder(config), nn.Embedding(len(names), 64)
    optimizer = torch.optim.AdamW([*decoder.parameters(), *query.parameters()], lr=args.lr)
    loss_fn = SegLoss()

    def run(batch):
        q = query(torch.tensor([name_id[s.object_name] for s in batch]))[:, None]
        out = decoder(
            q, [scenes[s.scene_id][0] for s in batch], centres=[scenes[s.scene_id][1] for s in batch]
        )
        return out, loss_fn(out, [targets[s.key] for s in batch])

    def evaluate(samples) -> tuple[float, float]:
        decoder.eval()
        ious = []
        with torch.no_grad():
            for i in range(0, len(samples), 16):
                chunk = samples[i : i + 16]
                out, _ = run(chunk)
                for b, logits in enumerate(out.per_sample()):
                    pred, gt = logits[0].sigmoid() >= 0.5, targets[chunk[b].key].bool()
                    union = (pred | gt).sum().item()
                    ious.append((pred & gt).sum().item() / union if union else 1.0)
        decoder.train()
        return float(np.mean(ious)), float(np.mean(np.array(ious) >= 0.5))

    print(f"{'step':>6} {'loss':>8} {'train mIoU':>11} {'val mIoU':>9} {'val Acc@0.5':>12}")
    for step in range(1, args.steps + 1):
        _, terms = run(rng.sample(train, args.batch))
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            train_iou, _ = evaluate(rng.sample(train, min(200, len(train))))
            val_iou, val_acc = evaluate(val)
            print(
                f"{step:>6} {terms['loss'].item():>8.3f} {train_iou:>11.3f} {val_iou:>9.3f} {val_acc:>12.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
