"""One scene through the whole pipeline: views, crops, highlights, captions, fusion, verification, then
frame descriptions, a narrative and scenario questions. Returns the scene document and its records.

The expensive image work runs frame by frame: each chosen frame is decoded and ray-cast once (at the work
resolution), and every object that chose it takes its crops, highlight, color votes and visible
neighbours from that one instance mask. Captioner calls are batched per stage over the whole scene.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from core.annotate import prompts
from core.annotate.captioners.base import Captioner, CaptionRequest
from core.annotate.claims import Vocabulary, tokenize
from core.annotate.config import AnnotateConfig
from core.annotate.document import SceneAnnotation
from core.annotate.facts import (
    AnchorNames,
    label_text,
    pick_relations,
    pool_colors,
    relation_phrase,
    scene_relations,
    shape_words,
    size_class,
    view_color,
)
from core.annotate.fusion import fuse_views
from core.annotate.images import highlighted_frame, isolated_crop, load_color, mask_bbox, save_jpeg
from core.annotate.records import scene_records
from core.annotate.scene_text import NEEDS, answer_objects, guess_room_type, room_type
from core.annotate.verify import decide, fact_check, parse_consistency
from core.annotate.views import Candidate, select_views
from core.data.densescan import DenseScanRecord
from core.scene.geometry import scale_intrinsics
from core.scene.objects import ObjectInfo
from core.scene.relations import Viewpoint, left_of, normalize_label, right_of
from core.scene.render import MeshRenderer
from core.scene.scannet import Scene, load_scene
from core.scene.visibility import instance_visibility
from core.text import RANKING_PREDICATES, be
from core.text import relation_phrase as english_relation


@dataclass
class SceneResult:
    document: SceneAnnotation
    records: list[DenseScanRecord]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def doc(self) -> dict[str, Any]:
        """The document's JSON layout, as `annotation.json` holds it."""
        return self.document.to_json()


class StageClock:
    """Accumulates wall time per stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


@dataclass
class FrameContext:
    """One decoded and ray-cast frame at work resolution."""

    index: int
    frame_id: str
    color: np.ndarray
    instance: np.ndarray
    pixels: dict[int, int]  # object id -> rendered pixels
    camera: np.ndarray  # (3,) camera centre


class SceneAnnotator:
    """Runs the stages of one scene; `run` returns the `SceneResult` and writes images under `out_dir`."""

    def __init__(
        self,
        scene: Scene,
        captioner: Captioner,
        config: AnnotateConfig,
        out_dir: Path,
        progress: bool = False,
    ):
        self.scene, self.captioner, self.config, self.out_dir = scene, captioner, config, out_dir
        self.progress = progress
        self.clock = StageClock()
        self.objects = scene.objects()
        self.by_id = {o.object_id: o for o in self.objects}
        self.labels = [o.label for o in self.objects]
        skip = {normalize_label(s) for s in config.skip_labels}
        self.targets = [o for o in self.objects if normalize_label(o.label) not in skip]
        self.names = {o.object_id: label_text(o.label) for o in self.objects}
        self.anchor_names = AnchorNames(self.objects)  # how a sentence about an object names its anchors
        # the names the fact checker knows: the scene's labels, the label table's names and synonyms
        table = scene.label_map
        self.vocab = Vocabulary.from_label_map(self.labels, table) if table else Vocabulary(self.labels)
        frames = scene.frames.frames if scene.frames is not None else []
        self.frames = frames
        if frames:
            width, height = scene.frames.color_size
            self.size = (max(1, round(width * config.work_scale)), max(1, round(height * config.work_scale)))
            self.K = scale_intrinsics(
                scene.frames.color_intrinsics, self.size[0] / width, self.size[1] / height
            )
            self.renderer = MeshRenderer(scene.mesh, scene.vertex_instance)

    # ------------------------------------------------------------------------------------------ run

    def run(self) -> SceneResult:
        entries = {o.object_id: self._entry(o) for o in self.targets}
        with self.clock.stage("relations"):
            self.relations = {
                o.object_id: scene_relations(o, self.objects, self.anchor_names) for o in self.targets
            }
        if self.frames:
            self._views(entries)
        else:
            for entry in entries.values():
                entry["reason"] = "the scene has no RGB-D frames"
        captioned = [e for e in entries.values() if e["views"]]
        self._describe_views(captioned)
        self._fuse_and_verify(captioned)
        frames = self._frame_descriptions() if self.frames else []
        narrative = self._narrative(entries)
        scenarios = self._scenarios(entries)
        doc = {
            "scene_id": self.scene.scene_id,
            "captioner": self.captioner.name,
            "config": self.config.to_json(),
            "objects": [entries[o.object_id] for o in self.targets],
            "frames": frames,
            "narrative": narrative,
            "scenarios": scenarios,
        }
        document = SceneAnnotation.from_json(doc, f"the document of {self.scene.scene_id}")
        timings = {k: round(v, 3) for k, v in self.clock.seconds.items()}
        return SceneResult(document, scene_records(document), timings)

    def _entry(self, obj: ObjectInfo) -> dict[str, Any]:
        return {
            "object_id": obj.object_id,
            "label": obj.label,
            "box": [round(float(v), 4) for v in obj.box],
            "size_class": size_class(obj),
            "shape": shape_words(obj),
            "views": [],
            "views_requested": self.config.top_k,  # distinct views asked for; len(views): how many it got
            "rejected_views": [],
            "reason": None,
        }

    # --------------------------------------------------------------------------- stages 1-2: images

    def _views(self, entries: dict[int, dict[str, Any]]) -> None:
        cfg = self.config
        with self.clock.stage("visibility"):
            table = instance_visibility(self.scene, cfg.tolerance, cfg.near, cfg.far)
            column = {int(oid): k for k, oid in enumerate(table.object_ids)}
            poses = np.stack([f.pose for f in self.frames])
            chosen: dict[int, list[tuple[int, Candidate, int]]] = defaultdict(list)
            for obj in self.targets:
                found = select_views(table, column[obj.object_id], poses, obj.center, cfg)
                if not found:
                    entries[obj.object_id]["reason"] = (
                        f"not visible: no frame sees {cfg.min_visible_vertices} or more of its vertices"
                    )
                for rank, candidate in enumerate(found):
                    chosen[candidate.frame_index].append((rank, candidate, obj.object_id))
        views_by_object: dict[int, list[tuple[int, dict]]] = defaultdict(list)
        bar = tqdm(
            sorted(chosen), desc=f"{self.scene.scene_id} views", leave=False, disable=not self.progress
        )
        for f in bar:
            ctx = self._frame(f)
            for rank, candidate, oid in chosen[f]:
                view = self._view(ctx, self.by_id[oid], candidate)
                if view is None:
                    entries[oid]["rejected_views"].append(
                        {"frame_id": ctx.frame_id, "reason": f"fewer than {cfg.min_pixels} rendered pixels"}
                    )
                else:
                    views_by_object[oid].append((rank, view))
        for oid, views in views_by_object.items():
            entries[oid]["views"] = [v for _, v in sorted(views, key=lambda item: item[0])]
        for entry in entries.values():
            if not entry["views"] and entry["reason"] is None:
                entry["reason"] = "no chosen view shows enough of the object"

    def _frame(self, f: int) -> FrameContext:
        frame = self.frames[f]
        with self.clock.stage("render"):
            color = load_color(frame.color_path, self.size)
            instance = self.renderer.render(frame.pose, self.K, *self.size, color=False).instance
            ids, counts = np.unique(instance[instance >= 0], return_counts=True)
        return FrameContext(
            f,
            frame.frame_id,
            color,
            instance,
            dict(zip(ids.tolist(), counts.tolist())),
            frame.pose[:3, 3].copy(),
        )

    def _view(self, ctx: FrameContext, obj: ObjectInfo, candidate: Candidate) -> dict[str, Any] | None:
        cfg = self.config
        pixels = ctx.pixels.get(obj.object_id, 0)
        if pixels < cfg.min_pixels:
            return None
        oid, fid = obj.object_id, ctx.frame_id
        with self.clock.stage("isolation"):
            mask = ctx.instance == oid
            box = mask_bbox(mask)
            crops = []
            for s, scale in enumerate(cfg.crop_scales):
                crop = isolated_crop(ctx.color, mask, box, scale, cfg.background, cfg.crop_size)
                path = f"crops/{oid}_{fid}_s{s}.jpg"
                save_jpeg(self.out_dir / path, crop)
                crops.append(path)
            colors = view_color(ctx.color[mask], cfg.color_samples)
        with self.clock.stage("highlight"):
            highlight = f"highlights/{oid}_{fid}.jpg"
            save_jpeg(self.out_dir / highlight, highlighted_frame(ctx.color, mask, box, cfg.highlight))
            visible = {
                i for i, n in ctx.pixels.items() if n >= cfg.min_pixels and i != oid and i in self.by_id
            }
            names = self.anchor_names.names_for(oid)
            relations = [
                relation_phrase(r, names, self.names[oid])
                for r in pick_relations(self.relations[oid], visible, cfg.max_relations)
            ]
            side = self._side_relation(obj, ctx.camera, visible)
            if side and len(relations) < cfg.max_relations:
                relations.append(side)
        return {
            "frame_id": fid,
            "score": candidate.score,
            "visible_vertices": candidate.visible_vertices,
            "coverage": candidate.coverage,
            "pixels": int(pixels),
            "bbox": list(box),
            "crops": crops,
            "highlight": highlight,
            "color_votes": colors,
            "visible_neighbours": sorted(visible),
            "relations": relations,
        }

    def _side_relation(self, obj: ObjectInfo, camera: np.ndarray, visible: set[int]) -> str | None:
        """One 'to the left / right of' relation as seen from this camera, with the nearest clear anchor."""
        if float(np.hypot(*(obj.center[:2] - camera[:2]))) < 1e-3:
            return None
        view = Viewpoint.looking_at(camera, obj.center)
        names = self.anchor_names.names_for(obj.object_id)
        anchors = sorted(
            (self.by_id[i] for i in visible if self.by_id[i].label not in ("wall", "floor") and i in names),
            key=lambda o: (float(np.linalg.norm(o.center - obj.center)), o.object_id),
        )
        for anchor in anchors[:3]:
            for name, test in (("left of", left_of), ("right of", right_of)):
                if test(obj, anchor, view):
                    return english_relation(name, [f"the {names[anchor.object_id]}"])
        return None

    # -------------------------------------------------------------------- per-view captions (1-2)

    def _describe_views(self, entries: list[dict[str, Any]]) -> None:
        isolated, highlighted = [], []
        for entry in entries:
            oid, label = entry["object_id"], label_text(entry["label"])
            for view in entry["views"]:
                key = f"{self.scene.scene_id}|{oid}|{view['frame_id']}"
                color = next(iter(view["color_votes"]), None)
                isolated.append(
                    CaptionRequest(
                        "isolated_view",
                        prompts.isolated_view(label),
                        self._images(view["crops"]),
                        {
                            "key": key,
                            "label": label,
                            "color": color,
                            "size": entry["size_class"],
                            "shape": entry["shape"],
                        },
                        max_tokens=96,
                    )
                )
                neighbours = [self.names[i] for i in view["visible_neighbours"]]
                highlighted.append(
                    CaptionRequest(
                        "highlighted_view",
                        prompts.highlighted_view(label, neighbours),
                        self._images([view["highlight"]]),
                        {"key": key, "label": label, "relations": view["relations"]},
                        max_tokens=128,
                    )
                )
        with self.clock.stage("caption_views"):
            isolated_texts = self.captioner.caption(isolated) if isolated else []
            highlighted_texts = self.captioner.caption(highlighted) if highlighted else []
        i = 0
        for entry in entries:
            for view in entry["views"]:
                view["isolated_text"], view["highlighted_text"] = isolated_texts[i], highlighted_texts[i]
                i += 1

    def _images(self, paths: list[str]) -> list[np.ndarray]:
        """Images for backends that look at them; the offline captioner does not, so none are decoded."""
        if self.captioner.name == "grounded":
            return []
        from PIL import Image

        out = []
        for p in paths:
            with Image.open(self.out_dir / p) as im:
                out.append(np.asarray(im.convert("RGB")))
        return out

    # --------------------------------------------------------------------- stages 3-4: fusion, check

    def _fuse_and_verify(self, entries: list[dict[str, Any]]) -> None:
        fusion_requests, check_requests, fused_all, evidence = [], [], [], []
        with self.clock.stage("fusion"):
            for entry in entries:
                oid, label = entry["object_id"], label_text(entry["label"])
                texts = [f"{v['isolated_text']} {v['highlighted_text']}" for v in entry["views"]]
                colors = pool_colors([v["color_votes"] for v in entry["views"]])
                fused = fuse_views(texts, entry["label"], self.labels, colors, self.config.max_relations)
                fused_all.append(fused)
                evidence.append(colors)
                key = f"{self.scene.scene_id}|{oid}"
                best = entry["views"][0]
                fusion_requests.append(
                    CaptionRequest(
                        "fusion",
                        prompts.fusion(label, texts, fused.recurring()),
                        self._images([best["crops"][0], best["highlight"]]),
                        {
                            "key": key,
                            "label": label,
                            "color": fused.color,
                            "size": entry["size_class"],
                            "shape": entry["shape"],
                            "relations": _full_phrases(fused.relations, entry["views"], label),
                        },
                        max_tokens=200,
                    )
                )
                view_colors = [c for c in (next(iter(v["color_votes"]), None) for v in entry["views"]) if c]
                check_requests.append(
                    CaptionRequest(
                        "verification",
                        prompts.verification(label, texts),
                        [],
                        {"key": key, "label": label, "view_colors": view_colors},
                        max_tokens=64,
                    )
                )
            captions = self.captioner.caption(fusion_requests) if fusion_requests else []
        with self.clock.stage("verification"):
            answers = self.captioner.caption(check_requests) if check_requests else []
            for entry, fused, colors, caption, answer in zip(entries, fused_all, evidence, captions, answers):
                obj = self.by_id[entry["object_id"]]
                verdicts = fact_check(caption, obj, self.objects, colors, self.vocab)
                consistent = parse_consistency(answer)
                status, confidence = decide(verdicts, consistent, len(entry["views"]), self.config.top_k)
                entry["fusion"] = {
                    "color": fused.color,
                    "color_votes": colors.votes,
                    "relations": fused.relations,
                    "color_counts": fused.color_counts,
                    "relation_counts": fused.relation_counts,
                    "conflicts": fused.conflicts,
                }
                entry["caption"] = caption
                entry["verification"] = {
                    "consistency_answer": answer,
                    "consistent": consistent,
                    "claims": [v.to_json() for v in verdicts],
                    "status": status,
                    "confidence": confidence,
                }

    # ------------------------------------------------------------------------------ scene level

    def _frame_descriptions(self) -> list[dict[str, Any]]:
        """Frames spread over the trajectory, each centred on a different object, described whole."""
        cfg = self.config
        with self.clock.stage("frames"):
            table_ids = {o.object_id for o in self.targets}
            step = max(1, len(self.frames) // max(cfg.frame_descriptions, 1))
            picks, used, requests = [], set(), []
            for start in range(0, len(self.frames), step):
                if len(picks) == cfg.frame_descriptions:
                    break
                ctx = self._frame(start)
                visible = {i: n for i, n in ctx.pixels.items() if i in table_ids and n >= cfg.min_pixels}
                ranked = sorted((i for i in visible if i not in used), key=lambda i: (-visible[i], i))
                if not ranked:
                    continue
                main = ranked[0]
                used.add(main)
                mask = ctx.instance == main
                path = f"frames/{ctx.frame_id}_{main}.jpg"
                save_jpeg(
                    self.out_dir / path, highlighted_frame(ctx.color, mask, mask_bbox(mask), cfg.highlight)
                )
                others = [i for i in sorted(visible, key=lambda i: (-visible[i], i)) if i != main][:5]
                sentences = []
                for i in [main, *others]:
                    subject = self.anchor_names.name(i)  # "the chair" only when the reader can tell which
                    if subject is None:
                        continue
                    for r in pick_relations(self.relations[i], set(visible) - {i}, 1):
                        names = self.anchor_names.names_for(i)
                        phrase = relation_phrase(r, names, self.names[i])
                        sentences.append(f"the {subject} {be(subject)} {phrase}")
                colors = {
                    i: next(iter(view_color(ctx.color[ctx.instance == i], cfg.color_samples)), None)
                    for i in [main, *others]
                }
                facts = {
                    "key": f"{self.scene.scene_id}|frame|{ctx.frame_id}",
                    "highlighted": {"label": self.names[main], "color": colors[main]},
                    "visible": [{"label": self.names[i], "color": colors[i]} for i in others],
                    "relations": sentences[: cfg.max_relations],
                }
                requests.append(
                    CaptionRequest(
                        "frame",
                        prompts.frame(self.names[main], [self.names[i] for i in others]),
                        self._images([path]),
                        facts,
                        max_tokens=200,
                    )
                )
                picks.append(
                    {
                        "frame_id": ctx.frame_id,
                        "object_id": main,
                        "image": path,
                        "visible_objects": sorted(visible),
                    }
                )
            texts = self.captioner.caption(requests) if requests else []
        for pick, text in zip(picks, texts):
            pick["description"] = text
        return picks

    def _main_objects(self, entries: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        by_label: dict[str, list[ObjectInfo]] = defaultdict(list)
        for obj in self.targets:
            by_label[label_text(obj.label)].append(obj)
        ranked = sorted(by_label.items(), key=lambda kv: (-sum(float(np.prod(o.size)) for o in kv[1]), kv[0]))
        out = []
        for label, objs in ranked[:6]:
            color = (entries[objs[0].object_id].get("fusion") or {}).get("color")
            out.append(
                {
                    "label": label,
                    "count": len(objs),
                    "color": color if len(objs) == 1 else None,
                    "object_ids": [o.object_id for o in objs],
                }
            )
        return out

    def _narrative(self, entries: dict[int, dict[str, Any]]) -> dict[str, Any]:
        with self.clock.stage("narrative"):
            room, room_source = room_type(self.scene.meta, self.labels)
            floors = [o for o in self.objects if normalize_label(o.label) == "floor"]
            if floors:
                extent = floors[0].size[:2]
            else:
                vertices = self.scene.mesh.vertices
                extent = vertices[:, :2].max(0) - vertices[:, :2].min(0) if len(vertices) else np.zeros(2)
            main = self._main_objects(entries)
            arrangement = []
            for item in main[:4]:
                oid = item["object_ids"][0]
                rels = pick_relations(self.relations[oid], None, 1)
                if rels and item["count"] == 1:
                    names = self.anchor_names.names_for(oid)
                    arrangement.append(
                        f"the {item['label']} {be(item['label'])} "
                        f"{relation_phrase(rels[0], names, item['label'])}"
                    )
            facts = {
                "key": f"{self.scene.scene_id}|narrative",
                "room_type": room,
                "extent": [round(float(extent[0]), 2), round(float(extent[1]), 2)],
                "main_objects": main,
                "arrangement": arrangement,
            }
            request = CaptionRequest(
                "narrative", prompts.narrative(room, [m["label"] for m in main]), [], facts, max_tokens=300
            )
            text = self.captioner.caption([request])[0]
        return {
            "room_type": room,
            "room_type_source": room_source,  # "meta": the scan's sceneType; "guess": from its categories
            "room_type_guess": guess_room_type(self.labels),
            "extent": facts["extent"],
            "main_objects": main,
            "text": text,
        }

    def _scenarios(self, entries: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        with self.clock.stage("scenario"):
            items, requests = [], []
            for need in NEEDS:
                if len(items) == self.config.scenario_questions:
                    break
                answers = [o for o in answer_objects(need, self.targets) if entries[o.object_id]["views"]]
                if not answers:
                    continue
                phrases = []
                for o in answers:
                    color = (entries[o.object_id].get("fusion") or {}).get("color")
                    phrases.append(f"the {color + ' ' if color else ''}{self.names[o.object_id]}")
                answer = ", ".join(dict.fromkeys(phrases))
                requests.append(
                    CaptionRequest(
                        "scenario",
                        prompts.scenario(need.need, list(dict.fromkeys(phrases))),
                        [],
                        {
                            "key": f"{self.scene.scene_id}|{need.need}",
                            "need": need.need,
                            "questions": list(need.questions),
                        },
                        max_tokens=64,
                    )
                )
                items.append(
                    {"need": need.need, "answer": answer, "answer_object_ids": [o.object_id for o in answers]}
                )
            questions = self.captioner.caption(requests) if requests else []
        for item, question in zip(items, questions):
            item["question"] = question.strip()
        return items


def _full_phrases(fused: list[str], views: list[dict[str, Any]], label: str) -> list[str]:
    """The kept relations as the views phrased them, anchor names whole: the claim reader stops at the
    anchor's noun, so "next to the nightstand" kept by fusion is written back as the views' "next to the
    nightstand nearest the bed" (the phrase most views used). A ranking names the class again ("the
    window closest to the couch"), as `core.text.relation_phrase` writes it."""
    said: dict[str, int] = defaultdict(int)
    for view in views:
        for phrase in view["relations"]:
            said[phrase] += 1
    words = {p: " ".join(tokenize(p)) for p in said}
    out = []
    for relation in fused:
        matches = [p for p, w in words.items() if w == relation]
        longer = [p for p, w in words.items() if w.startswith(relation + " ") and " nearest the " in w]
        matches = matches or longer
        phrase = max(matches, key=lambda p: (said[p], p)) if matches else relation
        if phrase.startswith(RANKING_PREDICATES):
            phrase = f"the {label} {phrase}"
        out.append(phrase)
    return list(dict.fromkeys(out))


def annotate_scene(
    scans: Path,
    scene_id: str,
    out_dir: Path,
    captioner: Captioner,
    config: AnnotateConfig,
    progress: bool = False,
) -> SceneResult:
    """Load one scene and run every stage; images go under `out_dir`, the caller writes the document."""
    clock_start = time.perf_counter()
    scene = load_scene(scans, scene_id)
    load_seconds = time.perf_counter() - clock_start
    result = SceneAnnotator(scene, captioner, config, out_dir, progress).run()
    result.timings = {"load": round(load_seconds, 3), **result.timings}
    return result
