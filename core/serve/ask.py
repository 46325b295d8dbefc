"""Ask a scene: the project's own models on one scene and one sentence, for the app's live demo.

`SceneModels` holds the Dense3D and Ross3D checkpoint folders, loads each model once (on first use, under
a lock) and runs it on a scene of one scans root:

- `segment`: Dense3D's point mask for a sentence (the scene cached as training caches it, its frames
  chosen once);
- `ground`: Ross3D's probabilities over the scene's objects (the ground-truth instance boxes as
  proposals, as `python -m core predict ross3d` uses them) and "no object", the top k listed;
- `answer`: Ross3D's answer to a ScanQA question, or an SQA3D one with its situation;
- `reconstruct`: Ross3D's BEV and masked-view reconstructions beside the rendered BEV and the frames, with
  PSNR on the non-empty BEV pixels and latent MSE (`Ross3DModel.reconstruct`);
- `best_views`: the frames where an object is best seen, with it highlighted: the annotation pipeline's
  own depth-tested visibility ranking (`core.annotate.views`) and highlight (`core.annotate.images`).

A missing or broken checkpoint is a `ModelUnavailable` whose message says what to do; the app shows it in
place of the panel. Inference runs one call at a time on `threads` torch threads (a web server's
requests would otherwise fight over a few cores), and every result carries the seconds it took.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from core.data.errors import DataError
from core.models.errors import ModelError
from core.scene.errors import SceneError

T = TypeVar("T")
SAMPLERS = ("ddim", "ddpm")
RECON_QUESTION = "What does the room look like?"  # any text: the visual tokens come before it (causal LM)
SCENES_KEPT = 2  # scenes whose frames, proposals and visibility stay in memory
VIEW_SIDE = 400  # best frames are sent at most this many pixels wide (the page shows them small)
WARM_SENTENCE = "the chair next to the table"  # any sentence: warming only needs the forward pass


class ModelUnavailable(RuntimeError):
    """A model cannot run: no checkpoint, a broken one, or a scene it cannot read; the message says why."""


def default_threads() -> int:
    """Torch threads for inference: the machine's cores, at most 8 (more only adds contention)."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclass
class MaskResult:
    mask: np.ndarray  # (N,) bool over the scene's mesh vertices
    answer: str
    has_seg: bool
    score: float  # the model's confidence (with proposals: the chosen proposals' probability)
    seconds: float
    named_class: str | None = None  # with class matching: the class the model read from the sentence
    anchor_class: str | None = None  # with relation matching: the anchor it read ("near the <anchor>")


@dataclass
class Candidate:
    object_id: int
    label: str
    prob: float
    box: list[float]


@dataclass
class GroundResult:
    candidates: list[Candidate]  # the top k objects, most probable first
    no_object: float  # probability of "no such object"
    chosen: list[int]  # object ids ScanRefer's rule selects (empty: "no object" won)
    seconds: float


@dataclass
class AnswerResult:
    text: str
    seconds: float
    source: str = "llm"  # "llm", or "colour" / "count": read from the objects the question names
    llm_text: str = ""  # the LLM's own answer
    objects: list[tuple[int, str]] = field(default_factory=list)  # (object id, label) read from


@dataclass
class ReconResult:
    bev_truth: np.ndarray  # uint8 (H, W, 3): the rendered BEV
    bev: np.ndarray  # uint8 (H, W, 3): Ross3D's reconstruction
    views: list[tuple[int, np.ndarray, np.ndarray]]  # (frame index, the frame, its reconstruction)
    scores: dict[str, float | None]  # bev_psnr, bev_mean_psnr, bev_latent_mse, view_psnr, ...
    steps: int
    sampler: str
    seconds: float


@dataclass
class View:
    image: np.ndarray  # uint8 (h, w, 3), the object outlined
    frame_id: str
    score: float
    pixels: int


@dataclass
class _SceneViews:
    """What `best_views` needs of a scene, computed once: its frames, visibility table and renderer."""

    scene: Any
    table: Any
    renderer: Any
    size: tuple[int, int]
    intrinsics: np.ndarray


@dataclass
class SceneModels:
    scans: Path | None
    dense3d_dir: Path | None
    ross3d_dir: Path | None
    threads: int = field(default_factory=default_threads)
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    _models: dict[str, Any] = field(default_factory=dict)
    _errors: dict[str, str] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _dense_frames: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    _views: OrderedDict[str, _SceneViews] = field(default_factory=OrderedDict)
    _labels: dict[str, dict[int, str]] = field(default_factory=dict)
    _warmed: set[str] = field(default_factory=set)  # scenes `warm` ran on (app start and tab both ask)
    _cache_dir: tempfile.TemporaryDirectory | None = None
    _dense_cache: Any = None
    _store: Any = None

    # ------------------------------------------------------------------------------------- loading

    def missing(self, name: str) -> str | None:
        """Why model `name` ("dense3d" / "ross3d") cannot run, without loading it; None when it may."""
        folder = self.dense3d_dir if name == "dense3d" else self.ross3d_dir
        flag = f"--{name}"
        title = "Dense3D" if name == "dense3d" else "Ross3D"
        if name in self._errors:
            return self._errors[name]
        if folder is None:
            return (
                f"{title}: no checkpoint given (start the app with {flag} DIR, or ship one in assets/{name})"
            )
        if not (Path(folder) / "config.json").is_file():
            return (
                f"{title}: no checkpoint at {folder} (config.json missing); train one with "
                f"`python -m core train {name} ...` and pass {flag} RUN/model"
            )
        if self.scans is None:
            return f"{title}: the app serves no scans (start it with --data DIR)"
        return None

    def model(self, name: str) -> Any:
        """The loaded model (loaded on first use); `ModelUnavailable` with the reason otherwise."""
        with self._lock:
            if name in self._models:
                return self._models[name]
            why = self.missing(name)
            if why is not None:
                raise ModelUnavailable(why)
            try:
                self._models[name] = self._load(name)
            except (ModelError, DataError, OSError, ValueError) as exc:
                title = "Dense3D" if name == "dense3d" else "Ross3D"
                self._errors[name] = f"{title}: cannot load {self._folder(name)}: {exc}"
                raise ModelUnavailable(self._errors[name]) from None
            return self._models[name]

    def _folder(self, name: str) -> Path:
        folder = self.dense3d_dir if name == "dense3d" else self.ross3d_dir
        assert folder is not None
        return Path(folder)

    def _load(self, name: str) -> Any:
        if name == "dense3d":
            from core.data.datasets.scene_cache import SceneCache, SceneCacheConfig
            from core.models.dense3d.modeling_dense3d import Dense3DModel

            model = Dense3DModel.from_pretrained(self._folder(name), device=self.device).eval()
            self._cache_dir = tempfile.TemporaryDirectory(prefix="ask-dense3d-")
            config = SceneCacheConfig(
                voxel_size=model.config.voxel_size, require_instances=False, compute_superpoints=True
            )
            self._dense_cache = SceneCache(self.scans, self._cache_dir.name, config)
            return model
        from core.data.datasets.ross3d_samples import SceneStore
        from core.models.ross3d.modeling_ross3d import Ross3DModel

        model = Ross3DModel.from_pretrained(self._folder(name), device=self.device).eval()
        blank = bool((model.config.recipe or {}).get("blank_frames", False))
        self._store = SceneStore(self.scans, model.image, None, False, False, blank, SCENES_KEPT)
        return model

    def warm(self, scene_id: str) -> None:
        """Load the models, prepare the scene (its cache, frames, proposals, visibility table) and answer
        one sentence about it, so that a person's first sentence is answered at full speed; a model that
        cannot run is skipped (the ask that follows reports it). A scene warmed before is not warmed
        again: a second warm would only make the person's first sentence wait on the lock."""
        from core.annotate.config import AnnotateConfig

        with self._running():
            if scene_id in self._warmed:
                return
            self._warmed.add(scene_id)
            for name in ("dense3d", "ross3d"):
                try:
                    # one real query: it also fills what the model keeps per scene (frozen U-Net features,
                    # proposals) and pays the first call's one-time costs before a person waits on them
                    if name == "dense3d":
                        self.segment(scene_id, WARM_SENTENCE)
                    else:
                        self.ground(scene_id, WARM_SENTENCE)
                except (ModelUnavailable, DataError, SceneError):
                    continue
            if self.scans is not None:
                self._scene_views(scene_id, AnnotateConfig())

    def warm_in_background(self, scene_id: str) -> threading.Thread:
        """`warm` on a daemon thread (asks wait for it on the lock, then run warm)."""
        thread = threading.Thread(target=self.warm, args=(scene_id,), name=f"warm-{scene_id}", daemon=True)
        thread.start()
        return thread

    @contextmanager
    def _running(self):
        """One inference at a time, on `threads` torch threads (restored after)."""
        with self._lock:
            before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                yield
            finally:
                torch.set_num_threads(before)

    def _timed(self, run: Callable[[], T]) -> tuple[T, float]:
        with self._running():
            started = time.perf_counter()
            try:
                out = run()
            except (DataError, SceneError) as exc:
                raise ModelUnavailable(str(exc)) from None
            return out, time.perf_counter() - started

    # ------------------------------------------------------------------------------------- Dense3D

    def segment(self, scene_id: str, sentence: str) -> MaskResult:
        """Dense3D's mask of the sentence over the scene's mesh vertices."""
        from core.data.datasets.loader import SceneItem, collate
        from core.data.datasets.refseg import RefSegSample
        from core.models.dense3d.modeling_dense3d import Dense3DInputs

        model = self.model("dense3d")

        def run() -> Any:
            cached = self._dense_cache.get(scene_id)
            sample = RefSegSample(f"{scene_id}|ask", "scanrefer", scene_id, sentence, "", (), "", "")
            frames = [self._frames(model, scene_id)] if model.image is not None else None
            inputs = Dense3DInputs(collate([SceneItem(cached, sample)]), frames)
            return model.predict(inputs.to(model.device))[0]

        p, seconds = self._timed(run)
        mask = np.asarray(p.point_mask, dtype=bool)
        return MaskResult(
            mask, p.answer, bool(p.has_seg), float(p.score), seconds, p.named_class, p.anchor_class
        )

    def _frames(self, model: Any, scene_id: str) -> Any:
        from core.scene.scannet import load_scene

        if scene_id not in self._dense_frames:
            self._dense_frames[scene_id] = model.image.select_and_load(load_scene(self.scans, scene_id))
            while len(self._dense_frames) > SCENES_KEPT:
                self._dense_frames.popitem(last=False)
        return self._dense_frames[scene_id]

    # -------------------------------------------------------------------------------------- Ross3D

    def labels(self, scene_id: str) -> dict[int, str]:
        """Object id -> raw label of the scene's annotated objects."""
        if scene_id not in self._labels:
            from core.scene.scannet import load_scene

            scene = load_scene(self.scans, scene_id, with_frames=False)
            self._labels[scene_id] = {o.object_id: o.label for o in scene.objects()}
        return self._labels[scene_id]

    def _sample(self, scene_id: str, task: str, text: str, situation: str | None = None) -> Any:
        from core.models.ross3d.processor_ross3d import Ross3DSample

        data = self._store.get(scene_id)
        return Ross3DSample(  # questions carry the proposals too: the grounded colour answers read them
            scene_id=scene_id,
            task=task,
            question=text,
            answer=None,
            frames=data.frames,
            proposals=data.proposals,
            proposal_ids=list(data.proposal_ids),
            situation=situation,
        )

    def ground(self, scene_id: str, sentence: str, k: int = 5) -> GroundResult:
        """Ross3D's top-k objects for the sentence, their probabilities, and "no object"'s."""
        model = self.model("ross3d")

        def run() -> tuple[Any, Any]:
            sample = self._sample(scene_id, "scanrefer", sentence)
            return sample, model.ground([sample.to(model.device)])[0]

        (sample, probs), seconds = self._timed(run)
        labels = self.labels(scene_id)
        objects = probs[:-1]
        order = torch.argsort(objects, descending=True, stable=True)[:k].tolist()
        boxes = sample.proposals.double().tolist()
        ids = sample.proposal_ids
        candidates = [
            Candidate(ids[i], labels.get(ids[i], "object"), float(objects[i]), boxes[i]) for i in order
        ]
        chosen = [ids[i] for i in model.select_proposals(probs, "scanrefer")]
        return GroundResult(candidates, float(probs[-1]), chosen, seconds)

    def answer(self, scene_id: str, question: str, situation: str = "") -> AnswerResult:
        """Ross3D's answer: SQA3D style when a situation is given, else ScanQA style."""
        model = self.model("ross3d")
        task = "sqa3d" if situation.strip() else "scanqa"

        def run() -> Any:
            sample = self._sample(scene_id, task, question, situation.strip() or None)
            return model.answer_details([sample.to(model.device)])[0]

        detail, seconds = self._timed(run)
        labels = self.labels(scene_id) if detail.object_ids else {}
        objects = [(i, labels.get(i, "object")) for i in detail.object_ids]
        return AnswerResult(detail.text, seconds, detail.source, detail.llm_text, objects)

    def reconstruct(
        self, scene_id: str, steps: int = 10, sampler: str = "ddim", seed: int = 0
    ) -> ReconResult:
        """Ross3D's BEV and masked-view reconstructions of the scene beside the truth, with their scores."""
        if steps < 1:
            raise ModelUnavailable(f"steps must be >= 1, got {steps}")
        if sampler not in SAMPLERS:
            raise ModelUnavailable(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        model = self.model("ross3d")

        def run() -> Any:
            from core.models.ross3d.processor_ross3d import Ross3DSample
            from core.models.ross3d.targets import SceneTargetCache, render_scene_bev
            from core.models.ross3d.vae import to_unit_range
            from core.scene.scannet import load_scene

            scene = load_scene(self.scans, scene_id)
            frames = self._store.get(scene_id).frames
            targets = SceneTargetCache(None, model.vae, model.config.targets).get(scene, frames.frame_indices)
            bev = render_scene_bev(scene, model.config.targets.bev_size)
            bev_image = to_unit_range(torch.from_numpy(np.ascontiguousarray(bev.color))[None])[0]
            sample = Ross3DSample(
                scene_id, "scanqa", RECON_QUESTION, None, frames,
                view_targets=targets.views, bev_target=targets.bev, bev_mask=targets.bev_mask,
                bev_image=bev_image,
            )  # fmt: skip
            result = model.reconstruct([sample.to(model.device)], steps=steps, sampler=sampler, seed=seed)
            return result.samples[0], frames.frame_indices, bev.color

        (item, indices, truth), seconds = self._timed(run)
        views = []
        if item.views is not None:
            for k, position in enumerate(item.masked_frames):
                views.append((int(indices[position]), _uint8(item.view_references[k]), _uint8(item.views[k])))
        names = (
            "bev_psnr",
            "bev_mean_psnr",
            "bev_latent_mse",
            "view_psnr",
            "view_mean_psnr",
            "view_latent_mse",
        )
        return ReconResult(
            np.ascontiguousarray(truth),
            _uint8(item.bev),
            views,
            {n: getattr(item, n) for n in names},
            steps,
            sampler,
            seconds,
        )

    # ---------------------------------------------------------------------------------- best views

    def best_views(self, scene_id: str, object_id: int, k: int = 3) -> list[View]:
        """Up to k frames where the object is best seen (the pipeline's view selection), outlined."""
        from core.annotate.config import AnnotateConfig
        from core.annotate.images import downscale, highlighted_frame, load_color, mask_bbox
        from core.annotate.views import select_views

        config = AnnotateConfig()
        with self._lock:
            found = self._scene_views(scene_id, config)
            if found is None or object_id not in found.table.object_ids:
                return []
            column = int(np.flatnonzero(found.table.object_ids == object_id)[0])
            frames = found.scene.frames.frames
            poses = np.stack([f.pose for f in frames])
            centre = next(o.center for o in found.scene.objects() if o.object_id == object_id)
            views = []
            for candidate in select_views(found.table, column, poses, centre, config)[: max(k, 0)]:
                frame = frames[candidate.frame_index]
                rendered = found.renderer.render(frame.pose, found.intrinsics, *found.size, color=False)
                mask = rendered.instance == object_id
                if not mask.any():
                    continue
                color = load_color(frame.color_path, found.size)
                image = downscale(
                    highlighted_frame(color, mask, mask_bbox(mask), config.highlight), VIEW_SIDE
                )
                views.append(View(image, frame.frame_id, candidate.score, int(mask.sum())))
            return views

    def _scene_views(self, scene_id: str, config: Any) -> _SceneViews | None:
        from core.scene.geometry import scale_intrinsics
        from core.scene.render import MeshRenderer
        from core.scene.scannet import load_scene
        from core.scene.visibility import instance_visibility

        if scene_id in self._views:
            self._views.move_to_end(scene_id)
            return self._views[scene_id]
        if self.scans is None:
            return None
        try:
            scene = load_scene(self.scans, scene_id)
        except SceneError:
            return None
        if scene.frames is None or not scene.frames.frames:
            return None
        table = instance_visibility(scene, config.tolerance, config.near, config.far)
        width, height = scene.frames.color_size
        size = (max(1, round(width * config.work_scale)), max(1, round(height * config.work_scale)))
        intrinsics = scale_intrinsics(scene.frames.color_intrinsics, size[0] / width, size[1] / height)
        found = _SceneViews(scene, table, MeshRenderer(scene.mesh, scene.vertex_instance), size, intrinsics)
        self._views[scene_id] = found
        while len(self._views) > SCENES_KEPT:
            self._views.popitem(last=False)
        return found


def covered_object(vertex_instance: np.ndarray, vertices: np.ndarray) -> int | None:
    """The annotated object holding most of the mask's vertices (ties: the lowest id); None when the mask
    lies on no annotated object. What the app shows when Ross3D cannot say which object is meant."""
    ids = np.asarray(vertex_instance)[np.asarray(vertices, dtype=np.int64)]
    ids = ids[ids >= 0]
    if not len(ids):
        return None
    found, counts = np.unique(ids, return_counts=True)
    return int(found[np.argmax(counts)])


def _uint8(image: torch.Tensor) -> np.ndarray:
    """[3,H,W] in [-1, 1] -> uint8 (H, W, 3)."""
    from core.models.ross3d.vae import to_uint8

    return to_uint8(image[None].float())[0].numpy()
