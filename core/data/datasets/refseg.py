"""Referring-segmentation samples: one text, the objects it refers to, and where the pair came from.

Three sources, one `RefSegSample` type:

- ScanRefer: the description, one target (`object_id`); unique / multiple by ScanRefer's own rule
  (`core.data.scanrefer.unique_multiple`, what `python -m core eval` reports), or a lookup file.
- Multi3DRefer: the description, zero, one or many targets (the mask to learn is their union, empty for
  zero); "unique" when the `eval_type` says no same-class distractor (`*_wo_d`), else "multiple".
- DenseScan records (`python -m core annotate`'s densescan.json, or `python -m review export`): object
  captions (target `object_id`) and scenario questions (targets `answer_object_ids`); frame captions on
  request (`levels`), scene captions never (they name no object). A record is left out when the review
  rejected it (`review_status == "rejected"`); a record the review approved is kept whatever the pipeline
  said; otherwise the pipeline `status` decides (`skip_statuses`, default: rejected). The text is the
  record's own (a review export already carries the corrected text). Provenance (file, record index,
  level, statuses, revision, reviewer, edited) travels in `sample.provenance`.

Answer templates (the LLM's target): one target "It is [SEG].", several "They are [SEG].", none "There is
no such object." with no [SEG] at all: a model that emits no [SEG] predicts an empty mask, so zero-target
queries teach exactly that. `question` is the raw description; the model's chat template wraps it.

Keys: ScanRefer and DenseScan object captions `<scene>|<object>|<ann>` (`scanrefer.sample_key`, the
refseg prediction key), Multi3DRefer `<scene>|<ann>`, other DenseScan levels `<level>|<scene>|<object>|<ann>`.
Splits come from the split files `python -m core synth` writes (`<root>/scannetv2_<split>.txt`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.data.densescan import DenseScanRecord, read_densescan
from core.data.errors import DataError
from core.data.multi3drefer import Multi3DReferRecord, read_multi3drefer
from core.data.scanrefer import (
    MULTIPLE,
    UNIQUE,
    ScanReferRecord,
    read_scanrefer,
    read_unique_multiple_lookup,
    unique_multiple,
)
from core.scene.labels import LabelMap

SEG_TOKEN = "[SEG]"
ANSWER_ONE = f"It is {SEG_TOKEN}."
ANSWER_MANY = f"They are {SEG_TOKEN}."
ANSWER_NONE = "There is no such object."
KINDS = ("scanrefer", "multi3drefer", "densescan")
DENSESCAN_LEVELS = ("object", "scenario")  # the default: levels whose records name their targets
SKIP_STATUSES = ("rejected",)


def answer_for(num_targets: int) -> str:
    """The answer template for a query with `num_targets` targets."""
    return ANSWER_NONE if num_targets == 0 else ANSWER_ONE if num_targets == 1 else ANSWER_MANY


@dataclass
class RefSegSample:
    key: str
    kind: str  # scanrefer / multi3drefer / densescan
    scene_id: str
    question: str
    answer: str
    target_ids: tuple[int, ...]  # ScanNet objectIds; empty = no target
    object_name: str
    subset: str  # unique / multiple
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def unique(self) -> bool:
        return self.subset == UNIQUE

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what a training run records as its training set)."""
        out = asdict(self)
        out["target_ids"] = list(self.target_ids)
        return out


def _target(path: Path | str, index: int, value: str, field_name: str = "object_id") -> int:
    """An object id written as a string, as a non-negative int (DataError naming the record otherwise)."""
    try:
        number = int(value)
    except ValueError:
        raise DataError(
            path, f"expected an object id, found {value!r}", index=index, field=field_name
        ) from None
    if number < 0:
        raise DataError(
            path, f"expected a non-negative object id, found {number}", index=index, field=field_name
        )
    return number


def scanrefer_samples(
    records: Sequence[ScanReferRecord],
    label_map: LabelMap,
    path: str | Path = "ScanRefer",
    lookup: dict[tuple[str, str], str] | None = None,
) -> list[RefSegSample]:
    """One sample per ScanRefer record (unique / multiple from `lookup` when given, else ScanRefer's rule)."""
    splits = unique_multiple(list(records), label_map) if lookup is None else None
    out = []
    for i, r in enumerate(records):
        if lookup is not None:
            if (r.scene_id, r.object_id) not in lookup:
                raise DataError(
                    path, "object missing from the unique / multiple lookup", index=i, field="object_id"
                )
            split = lookup[(r.scene_id, r.object_id)]
        else:
            split = splits[r.key]
        out.append(
            RefSegSample(
                key=r.key,
                kind="scanrefer",
                scene_id=r.scene_id,
                question=r.description.strip(),
                answer=ANSWER_ONE,
                target_ids=(_target(path, i, r.object_id),),
                object_name=r.object_name,
                subset=split,
                provenance={"file": str(path), "record": i, "ann_id": r.ann_id},
            )
        )
    return out


def multi3drefer_samples(
    records: Sequence[Multi3DReferRecord], path: str | Path = "Multi3DRefer"
) -> list[RefSegSample]:
    """One sample per Multi3DRefer query; the targets are every listed object (possibly none)."""
    return [
        RefSegSample(
            key=r.key,
            kind="multi3drefer",
            scene_id=r.scene_id,
            question=r.description.strip(),
            answer=answer_for(len(r.object_ids)),
            target_ids=tuple(sorted(set(r.object_ids))),
            object_name=r.object_name,
            subset=UNIQUE if r.eval_type.endswith("wo_d") else MULTIPLE,
            provenance={"file": str(path), "record": i, "ann_id": r.ann_id, "eval_type": r.eval_type},
        )
        for i, r in enumerate(records)
    ]


def densescan_excluded(record: DenseScanRecord, skip_statuses: Iterable[str] = SKIP_STATUSES) -> bool:
    """True when the record must not be trained on: the review rejected it, or no review approved it and
    the pipeline's status is one of `skip_statuses`."""
    if record.review_status == "rejected":
        return True
    if record.review_status == "approved":
        return False
    return record.status in set(skip_statuses)


def densescan_samples(
    records: Sequence[DenseScanRecord],
    label_map: LabelMap,
    path: str | Path = "DenseScan",
    levels: Sequence[str] = DENSESCAN_LEVELS,
    skip_statuses: Iterable[str] = SKIP_STATUSES,
) -> list[RefSegSample]:
    """Samples from the DenseScan records of `levels` that are not excluded (module docstring)."""
    skip = tuple(skip_statuses)
    # The scene's objects and their ScanRefer classes, from every object / frame record (kept or not).
    classes: dict[str, dict[str, str]] = {}
    for r in records:
        if r.level in ("object", "frame") and not r.object_id.startswith("-"):
            name = r.object_name.replace("_", " ")
            classes.setdefault(r.scene_id, {}).setdefault(r.object_id, label_map.scanrefer_class(name))

    def subset_of(r: DenseScanRecord, targets: tuple[int, ...]) -> str:
        if len(targets) > 1:
            return MULTIPLE
        cls = label_map.scanrefer_class(r.object_name.replace("_", " "))
        per_scene = classes.get(r.scene_id, {})
        cls = per_scene.get(str(targets[0]), cls) if targets else cls
        return UNIQUE if sum(c == cls for c in per_scene.values()) <= 1 else MULTIPLE

    out = []
    for i, r in enumerate(records):
        if r.level not in levels or r.level == "scene" or densescan_excluded(r, skip):
            continue
        if r.level == "scenario":
            if not r.question:
                raise DataError(path, "a scenario record needs a question", index=i, field="question")
            if r.answer_object_ids is None:
                raise DataError(
                    path, "a scenario record needs answer_object_ids", index=i, field="answer_object_ids"
                )
            targets = tuple(
                sorted({_target(path, i, str(t), "answer_object_ids") for t in r.answer_object_ids})
            )
            question = r.question
        else:
            targets = (_target(path, i, r.object_id),)
            question = r.description
        subset = subset_of(r, targets)
        key = r.key if r.level == "object" else f"{r.level}|{r.key}"
        provenance = {
            "file": str(path),
            "record": i,
            "ann_id": r.ann_id,
            "level": r.level,
            "status": r.status,
            "source": r.source,
        }
        for name in ("review_status", "revision", "reviewer", "edited"):
            if getattr(r, name) is not None:
                provenance[name] = getattr(r, name)
        out.append(
            RefSegSample(
                key=key,
                kind="densescan",
                scene_id=r.scene_id,
                question=question.strip(),
                answer=answer_for(len(targets)),
                target_ids=targets,
                object_name=r.object_name,
                subset=subset,
                provenance=provenance,
            )
        )
    return out


def read_split(root: str | Path, split: str) -> list[str]:
    """Scene ids of a split file `<root>/scannetv2_<split>.txt` (one id per line)."""
    path = Path(root) / f"scannetv2_{split}.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(path, f"split file not found (split {split!r})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read the split file ({exc})") from None
    return [line.strip() for line in lines if line.strip()]


def load_samples(
    root: str | Path,
    split: str,
    sources: Sequence[str] = ("scanrefer", "multi3drefer"),
    densescan: Sequence[str | Path] = (),
    label_map: LabelMap | None = None,
    levels: Sequence[str] = DENSESCAN_LEVELS,
    skip_statuses: Iterable[str] = SKIP_STATUSES,
) -> list[RefSegSample]:
    """The samples of one split of a dataset root (`python -m core synth` layout): the benchmark files of
    `sources` (`annotations/ScanRefer_filtered_<split>.json`, `annotations/multi3drefer_<split>.json`),
    then each DenseScan file's records of the split's scenes. Sorted by (kind, key): a fixed order."""
    from core.data.datasets.scene_cache import default_label_map

    root = Path(root)
    unknown = sorted(set(sources) - {"scanrefer", "multi3drefer"})
    if unknown:
        raise DataError(None, f"unknown sample source(s) {unknown}: expected scanrefer and/or multi3drefer")
    label_map = label_map or default_label_map(root)
    scenes = set(read_split(root, split))
    out: list[RefSegSample] = []
    if "scanrefer" in sources:
        path = root / "annotations" / f"ScanRefer_filtered_{split}.json"
        lookup_path = root / "annotations" / "scanrefer_unique_multiple_lookup.json"
        lookup = read_unique_multiple_lookup(lookup_path) if lookup_path.is_file() else None
        out += scanrefer_samples(read_scanrefer(path), label_map, path, lookup)
    if "multi3drefer" in sources:
        path = root / "annotations" / f"multi3drefer_{split}.json"
        out += multi3drefer_samples(read_multi3drefer(path), path)
    for path in densescan:
        out += densescan_samples(read_densescan(path), label_map, path, levels, skip_statuses)
    out = [s for s in out if s.scene_id in scenes]
    check_unique(out)
    return sorted(out, key=lambda s: (KINDS.index(s.kind), s.key))


def check_unique(samples: Sequence[RefSegSample]) -> None:
    """Two samples of one kind with one key would be ambiguous in a prediction file: refuse."""
    seen: dict[tuple[str, str], RefSegSample] = {}
    for s in samples:
        first = seen.setdefault((s.kind, s.key), s)
        if first is not s:
            where = f"{first.provenance.get('file')} record {first.provenance.get('record')}"
            raise DataError(
                s.provenance.get("file"),
                f"duplicate {s.kind} sample key {s.key!r} (also {where})",
                index=s.provenance.get("record"),
            )


def summarize(samples: Sequence[RefSegSample]) -> dict[str, dict[str, int]]:
    """Counts per kind: samples, unique / multiple, zero / one / many targets."""
    out: dict[str, Counter] = {}
    for s in samples:
        c = out.setdefault(s.kind, Counter())
        c["samples"] += 1
        c[s.subset] += 1
        c[("zero", "one", "many")[min(len(s.target_ids), 2)] + "_target"] += 1
    return {kind: dict(c) for kind, c in out.items()}
