"""The object categories a sentence can name, as class ids a model can predict.

Why not NYU40: a referring sentence names the raw category ("the cup", "the monitor"), and NYU40 folds a
dozen of those into "otherprop" (cup, bottle, monitor, keyboard, plant... on the generated scenes). A model
whose 3D features only learned NYU40 cannot tell the named cup from the bottle beside it. So the vocabulary
is the raw instance labels of the training scenes (ScanNet's `aggregation.json` labels, the names ScanRefer
uses as `object_name`), normalised as `core.scene.labels.normalize_label` does ("office_chair" =
"office chair"), the frequent ones kept.

Class ids: 0 = "other" (a label outside the vocabulary, or no object), 1..K = the vocabulary in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from core.scene.labels import normalize_label

OTHER = 0
IGNORE = -100  # unannotated points: no class loss


def build_vocabulary(labels: Iterable[str], min_count: int = 2) -> list[str]:
    """Labels seen at least `min_count` times (instances, not points), most frequent first, ties by name."""
    counts = Counter(normalize_label(label) for label in labels if label.strip())
    return sorted(
        (name for name, n in counts.items() if n >= min_count), key=lambda name: (-counts[name], name)
    )


def _ids(vocabulary: Sequence[str]) -> dict[str, int]:
    return {name: i + 1 for i, name in enumerate(vocabulary)}


def class_id(label: str, vocabulary: Sequence[str]) -> int:
    """1-based id of `label` in `vocabulary`, OTHER when absent."""
    return _ids(vocabulary).get(normalize_label(label), OTHER)


def class_ids(labels: Iterable[str], vocabulary: Sequence[str]) -> list[int]:
    """`class_id` of each label, the vocabulary's index built once."""
    index = _ids(vocabulary)
    return [index.get(normalize_label(label), OTHER) for label in labels]


def point_classes(instance: Tensor, object_labels: dict[int, str], vocabulary: Sequence[str]) -> Tensor:
    """Per point (`instance` [N] objectIds, -1 unannotated): its object's class id, IGNORE where
    unannotated, OTHER for an object whose label is outside the vocabulary."""
    index = _ids(vocabulary)
    ids = instance.cpu().numpy()
    known = np.array(sorted(object_labels), dtype=np.int64)
    lookup = np.array([index.get(normalize_label(object_labels[k]), OTHER) for k in known], dtype=np.int64)
    out = np.full(ids.shape, IGNORE, dtype=np.int64)
    if len(known):
        where = np.searchsorted(known, ids).clip(0, len(known) - 1)
        hit = known[where] == ids
        out[hit] = lookup[where[hit]]
    return torch.from_numpy(out).to(instance.device)


def region_classes(point_class: Tensor, instance: Tensor, region: Tensor, num_regions: int) -> Tensor:
    """Class id [R] of each region (`region` [N], e.g. an object proposal per point): the class of the object
    holding more than half of its points; OTHER when no object does (a mix, or unannotated surface)."""
    out = torch.full((num_regions,), OTHER, dtype=torch.long, device=region.device)
    annotated = instance >= 0
    if not bool(annotated.any()):
        return out
    size = torch.bincount(region, minlength=num_regions)
    pairs = region[annotated] * (int(instance.max()) + 1) + instance[annotated]
    unique, count = torch.unique(pairs, return_counts=True)
    owner = unique // (int(instance.max()) + 1)
    majority = count * 2 > size[owner]
    if not bool(majority.any()):
        return out
    # the class of each (region, object) pair: any point of the pair carries it
    first = torch.full((int(unique.numel()),), -1, dtype=torch.long, device=region.device)
    slot = torch.searchsorted(unique, pairs)
    first.scatter_(0, slot, torch.nonzero(annotated).squeeze(1))
    out[owner[majority]] = point_class[first[majority]].clamp(min=OTHER)
    return out


def batch_point_classes(batch, vocabulary: Sequence[str]) -> Tensor:
    """`point_classes` of every item of a `SceneBatch` (its `instance` and `object_labels`), concatenated."""
    if batch.object_labels is None:
        raise ValueError("the batch carries no object labels (collate it from cached scenes)")
    offsets = batch.point_offsets.tolist()
    return torch.cat(
        [
            point_classes(batch.instance[offsets[b] : offsets[b + 1]], batch.object_labels[b], vocabulary)
            for b in range(batch.batch_size)
        ]
    )
