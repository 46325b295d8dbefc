"""The evidence of a review item (its 3D view, crop and highlighted-frame thumbnails), built once per
item, cached, and prefetched in a background thread while the annotator reads the current item.

A decision answers with the next item's caption and its evidence in one response, so the evidence must
be ready by then: `MediaCache.prefetch_next` builds the likely next items (the head of the user's queue) in
the background, and `MediaCache.get` returns a cached result, waits for one being built, or builds it.
Thumbnails are small JPEGs embedded as data URIs (the panel is one HTML fragment that arrives with the
rest of the item); a click opens the full image. Every panel carries `data-item-id`, so the page can
tell which item each panel shows.
"""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

from gradio.components.plot import PlotData
from PIL import Image, ImageDraw

from app.context import AppContext, object_id_of
from app.live_plot import live_plot_html
from app.scene_view import REVIEW_POINTS, scene_figure
from review import ItemView, QueueFilter, ReviewService

REVIEW_PLOT = "review-plot"  # the review workspace's 3D view block (its elem_id)

CROP_SIDE = 168  # px, longest side of a crop thumbnail (three in a row at 1400 px)
FRAME_SIDE = 272  # px, longest side of a highlighted-frame thumbnail (two in a row)
JPEG_QUALITY = 80
OUTLINE_RGB = (255, 0, 200)  # the object's box on frame thumbnails: visible on any room colour
CACHE_ITEMS = 64
MAX_CROPS = 8  # the best views' crops (the document lists views best first)
MAX_FRAMES = 6


@dataclass(frozen=True)
class Picture:
    """One image of the item: the file, its caption, and the object's pixel box in it (if known)."""

    path: Path
    caption: str
    box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 in the file's pixels


@dataclass(frozen=True)
class ItemMedia:
    """What the evidence panels show for one item."""

    item_id: int
    plot_html: str  # the 3D view's panel: the Plotly figure as JSON, drawn by the page's script
    crops_html: str
    highlights_html: str


def item_title(item: ItemView) -> str:
    """The 3D view's title: it names the item, so a screenshot says which item the view belongs to."""
    return f"{item.key.scene_id} · {item.object_name.replace('_', ' ')} · item {item.id}"


def pictures(ctx: AppContext, item: ItemView) -> tuple[list[Picture], list[Picture]]:
    """(crops, highlighted frames) of the item's object. The paths come from `AppContext.item_images`
    (which refuses paths that leave the annotations folder); a frame's box in pixels comes from the
    pipeline's view record of that highlight."""
    found = ctx.item_images(item)
    object_id = object_id_of(item)
    boxes: dict[str, tuple[int, int, int, int]] = {}
    if ctx.annotations is not None and object_id is not None:
        folder = ctx.scene_folder(item.key.scene_id)
        entry = ctx.object_entry(item.key.scene_id, object_id)
        for view in entry.views if entry is not None else []:
            if len(view.bbox) == 4:
                boxes[str((folder / view.highlight).resolve())] = tuple(view.bbox)
    crops = [Picture(Path(path), caption) for path, caption in found.crops[:MAX_CROPS]]
    frames = [
        Picture(Path(path), caption, boxes.get(str(Path(path).resolve())))
        for path, caption in found.highlights[:MAX_FRAMES]
    ]
    return crops, frames


@lru_cache(maxsize=2048)
def thumbnail(path: Path, mtime: float, side: int, box: tuple[int, int, int, int] | None) -> str:
    """A JPEG data URI of the image shrunk to `side` (aspect kept: never cropped), with the object's box
    drawn at thumbnail scale when given. `mtime` is part of the cache key."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = min(side / image.width, side / image.height, 1.0)
        small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    if box is not None:
        draw = ImageDraw.Draw(small)
        x0, y0, x1, y1 = (round(v * scale) for v in box)
        draw.rectangle((x0 - 3, y0 - 3, x1 + 2, y1 + 2), outline=(0, 0, 0), width=1)
        draw.rectangle((x0 - 2, y0 - 2, x1 + 1, y1 + 1), outline=OUTLINE_RGB, width=3)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def gallery_html(item_id: int, panel: str, title: str, found: list[Picture], side: int) -> str:
    """Thumbnails in fixed boxes (letterboxed), captions that wrap, each a link to the full image."""
    if not found:
        body = f'<p class="muted">no {escape(title)} for this item</p>'
    else:
        figures, unreadable = [], []
        for picture in found:
            try:
                src = thumbnail(picture.path, picture.path.stat().st_mtime, side, picture.box)
            except (OSError, ValueError) as exc:  # a broken file: say so, show the others
                unreadable.append(f"{picture.path.name}: {exc}")
                continue
            full = "/gradio_api/file=" + escape(str(picture.path.resolve()))
            figures.append(
                f'<figure class="thumb"><a href="{full}" target="_blank" data-full="{full}"'
                f' data-caption="{escape(picture.caption)}"><img src="{src}" alt="{escape(picture.caption)}"'
                f' loading="eager"></a><figcaption>{escape(picture.caption)}</figcaption></figure>'
            )
        body = f'<div class="thumbs thumbs-{side}">{"".join(figures)}</div>'
        if unreadable:
            body += f'<p class="note">not shown (unreadable): {escape("; ".join(unreadable))}</p>'
    return (
        f'<div class="review-panel" data-review-panel="{panel}" data-item-id="{item_id}">'
        f'<div class="panel-title">{escape(title)} <span class="muted">(click to enlarge)</span></div>'
        f"{body}</div>"
    )


def plot_html(item_id: int, figure: PlotData | None) -> str:
    """The 3D view's panel: a live plot (`app.live_plot`) drawn by the page's script into one plot that
    lives across items (Gradio's plot component mounts a new plot, a new WebGL context, for every figure,
    which costs seconds in software WebGL), marked with the item it shows."""
    return live_plot_html(
        REVIEW_PLOT,
        figure,
        "no 3D view: the scene is not in the scans folder",
        view_id="review-3d",
        classes="review-panel",
        attrs=f'data-review-panel="plot" data-item-id="{int(item_id)}"',
    )


def build_media(ctx: AppContext, item: ItemView) -> ItemMedia:
    """The 3D view (object framed, lighter budget) and the thumbnail panels of one item."""
    figure = None
    loaded = ctx.loaded(item.key.scene_id)
    if loaded is not None:
        figure = scene_figure(
            loaded.view,
            object_id_of(item),
            "rgb",
            item_title(item),
            budget=REVIEW_POINTS,
            framed=True,
            meta={"item": item.id},
            uirevision=f"item-{item.id}",
        )
    crops, frames = pictures(ctx, item)
    return ItemMedia(
        item.id,
        plot_html(item.id, figure),
        gallery_html(item.id, "crops", "isolated crops", crops, CROP_SIDE),
        gallery_html(item.id, "highlights", "highlighted frames", frames, FRAME_SIDE),
    )


class MediaCache:
    """Built media by item id (least recently used dropped), with one background thread for prefetch."""

    def __init__(self, ctx: AppContext, size: int = CACHE_ITEMS):
        self.ctx = ctx
        self.size = size
        self._built: OrderedDict[int, Future[ItemMedia]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="media-prefetch")

    def get(self, item: ItemView) -> ItemMedia:
        """The item's media: cached, being prefetched (waits for it), or built now in this thread."""
        with self._lock:
            future = self._built.get(item.id)
            build_here = future is None
            if build_here:
                future = Future()
                self._store(item.id, future)
            else:
                self._built.move_to_end(item.id)
        if not build_here:
            try:
                return future.result()
            except Exception:  # the prefetch failed: build it here, where the error reaches the user
                return self._build_now(item, Future())
        return self._build_now(item, future)

    def _build_now(self, item: ItemView, future: Future[ItemMedia]) -> ItemMedia:
        try:
            media = build_media(self.ctx, item)
        except BaseException as exc:
            future.set_exception(exc)
            with self._lock:
                if self._built.get(item.id) is future:
                    self._built.pop(item.id)
            raise
        future.set_result(media)
        with self._lock:
            self._store(item.id, future)
        return media

    def prefetch_next(
        self, service: ReviewService, user: str, filters: QueueFilter, current: int, count: int = 3
    ) -> None:
        """In the background: find the items the user's queue is likely to hand out next (the head of
        the queue in claim order, leaving out the current item and items others hold) and build them."""
        self._pool.submit(self._prefetch_queue, service, user, filters, current, count)

    def _prefetch_queue(
        self, service: ReviewService, user: str, filters: QueueFilter, current: int, count: int
    ) -> None:
        head = service.upcoming(user, filters, limit=count + 1)  # what the next claims would lease
        likely = [item for item in head if item.id != current]  # `upcoming` leaves out others' leases
        for item in likely[:count]:
            with self._lock:
                if item.id in self._built:
                    continue
                future: Future[ItemMedia] = Future()
                self._store(item.id, future)
            with suppress(Exception):  # a failed prefetch is built again (and reported) when shown
                self._build_now(item, future)

    def wait_idle(self, timeout: float | None = None) -> None:
        """Block until the prefetches queued so far have run (tests and benchmarks)."""
        self._pool.submit(lambda: None).result(timeout)

    def cached(self, item_id: int) -> bool:
        with self._lock:
            future = self._built.get(item_id)
            return future is not None and future.done() and future.exception() is None

    def _store(self, item_id: int, future: Future[Any]) -> None:
        self._built[item_id] = future
        while len(self._built) > self.size:
            self._built.popitem(last=False)
