"""App benchmark on the embedded demo (build it first with `python app.py`).

    python bench/bench_app.py [--runs 10] [--settle-ms 1000] [--no-browser] [--demo DIR]

Measures, and prints as a table:
- `python app.py` -> first page served (an already built demo);
- a scene view's cost: cold (load + build) and warm, and its payload, for the explorer and the lighter
  review view;
- server time of one review step (decide + the next item's panels), in process over the same code the
  callback runs: with the next item prefetched while the previous one is read (the app's normal case),
  and cold (nothing prefetched) (target: under 300 ms);
- in headless Chromium (software WebGL), approve -> the next item fully drawn: the time from the key
  press until EVERY panel of the page (header, caption, claims, other levels, crops, highlighted
  frames) carries the new item's id, its thumbnails are decoded and the 3D view has drawn it (plotly's
  react finished and two frames painted), median and worst over `--runs` decisions (targets: 1 s
  median, 2 s worst); also the time until the new item's text shows;
- "Ask the scene" with the Dense3D / Ross3D checkpoints (`--dense3d`, `--ross3d`, default assets/dense3d
  and assets/ross3d): the server time of one ask (both models, the best frames, the figure) on a warmed
  demo scene, and in Chromium the time from the Ask click until the figure of that sentence (with
  Dense3D's mask) is drawn, median and worst over `--runs` sentences of the scene's ScanRefer val
  descriptions (target: under 2 s on 2 cores).

Before each press the page must be ready and the browser idle for `--settle-ms` (an annotator reads
before deciding). The app runs on a copy of the demo's review database, so the demo is left as it was.
Numbers depend on the machine's load: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.demo import DEMO_PASSWORD, DemoPaths, demo_paths  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(
    paths: DemoPaths, db: Path, port: int, models: tuple[Path | None, Path | None] = (None, None)
) -> tuple[subprocess.Popen, float]:
    """Start `python app.py` on the demo and return it with the seconds until `/` answers 200."""
    command = [
        sys.executable,
        str(REPO / "app.py"),
        "--data",
        str(paths.root),
        "--annotations",
        str(paths.annotations),
        "--db",
        f"sqlite:///{db}",
        "--port",
        str(port),
        "--auth",
    ]
    for flag, folder in zip(("--dense3d", "--ross3d"), models):
        if folder is not None:
            command += [flag, str(folder)]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                if response.status == 200:
                    return process, time.perf_counter() - started
        except OSError:
            time.sleep(0.05)


def scene_view_cost(root: Path) -> list[tuple[str, str, str]]:
    """Rows: cold and warm cost and payload of the largest demo scene's explorer and review views."""
    from app.scene_view import REVIEW_POINTS, SceneView, scene_figure
    from core.scene.scannet import list_scenes, load_scene

    scenes = [load_scene(root, s, with_frames=False) for s in list_scenes(root)]
    scene = max(scenes, key=lambda s: s.mesh.num_vertices)
    object_id = max(
        scene.instances, key=lambda i: len(i.vertex_indices) if i.label not in ("floor", "wall") else 0
    ).object_id
    started = time.perf_counter()
    view = SceneView(load_scene(root, scene.scene_id, with_frames=False))
    explorer = scene_figure(view, object_id, "rgb", scene.scene_id)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    explorer = scene_figure(view, object_id, "rgb", scene.scene_id)
    warm = time.perf_counter() - started
    started = time.perf_counter()
    review = scene_figure(view, object_id, "rgb", "t", budget=REVIEW_POINTS, framed=True, meta={"item": 1})
    review_cold = time.perf_counter() - started
    started = time.perf_counter()
    review = scene_figure(view, object_id, "rgb", "t", budget=REVIEW_POINTS, framed=True, meta={"item": 1})
    review_warm = time.perf_counter() - started
    size = f"{scene.mesh.num_vertices // 1000}k-vertex scene"
    return [
        (f"explorer view, {size}, cold (load + build)", f"{cold:.2f} s", "< 1 s"),
        ("explorer view, warm (scene cached)", f"{warm * 1000:.0f} ms", "< 1 s"),
        ("explorer view payload (Plotly JSON)", f"{len(explorer.plot) / 1e6:.2f} MB", "< 2 MB"),
        (f"review view ({REVIEW_POINTS // 1000}k points), first", f"{review_cold * 1000:.0f} ms", "-"),
        ("review view, warm", f"{review_warm * 1000:.0f} ms", "-"),
        ("review view payload (Plotly JSON)", f"{len(review.plot) / 1e6:.2f} MB", "-"),
    ]


def server_steps(paths: DemoPaths, db: Path, runs: int) -> tuple[list[float], list[float]]:
    """Milliseconds of one review step in process (decide, then the next item's panels): with the next
    items prefetched first (as while an annotator reads), and cold (a fresh cache every step)."""
    from app import workflow
    from app.context import AppContext
    from app.item_media import MediaCache
    from app.review_tab import render_screen
    from review import QueueFilter, ReviewService

    service = ReviewService(f"sqlite:///{db}")
    try:
        ctx = AppContext(service, paths.root, paths.annotations)
        media = MediaCache(ctx)
        user, filters = "reviewer", QueueFilter()
        screen = workflow.open_next(service, user, filters)
        render_screen(ctx, media, screen, user)
        warm, cold = [], []
        for step in range(2 * runs):
            prefetched = step % 2 == 0
            if prefetched:
                media.prefetch_next(service, user, filters, screen.shown.item_id)
                media.wait_idle()  # the reading time: the prefetch finished
            else:
                media = MediaCache(ctx)  # nothing built for the next item (its scene is loaded)
            started = time.perf_counter()
            before = screen.shown
            screen = workflow.decide(service, user, before, "approve", require_lease=True)
            render_screen(ctx, media, screen, user, before)
            (warm if prefetched else cold).append((time.perf_counter() - started) * 1000)
            if screen.shown is None:
                break
        return warm, cold
    finally:
        service.close()


IDLE_JS = """() => { window.__lastBusy = performance.now(); new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    window.__lastBusy = Math.max(window.__lastBusy, e.startTime + e.duration);
  }
}).observe({type: "longtask"}); }"""

# Installed before each press: from the keydown on, poll every animation frame until the page shows a
# new item in every panel and its 3D view has drawn it. Independent of the page's own "ready" check.
WATCH_JS = """(previous) => {
  const bench = window.__bench = {done: false};
  window.addEventListener("keydown", () => { bench.t0 = performance.now(); }, {capture: true, once: true});
  const header = () => document.querySelector('#item-header [data-review-panel="header"]');
  const check = () => {
    const h = header();
    const id = h && h.dataset.itemId;
    if (bench.t0 !== undefined && id && id !== previous) {
      if (bench.text === undefined) bench.text = performance.now() - bench.t0;
      const panels = [...document.querySelectorAll("[data-review-panel]")];
      const same = panels.length >= 6 && panels.every((p) => p.dataset.itemId === id);
      const images = [...document.querySelectorAll("[data-review-panel] img")].every((i) => i.complete);
      const gd = document.getElementById("review-3d");
      const panel = document.querySelector('#review-plot [data-review-panel="plot"]');
      const title = gd && gd.querySelector(".gtitle");
      const drawn = gd && panel && gd.dataset.drawn === panel.dataset.figure && title
        && title.textContent.endsWith("item " + id);
      if (same && images && drawn) {
        bench.all = performance.now() - bench.t0;
        bench.item = id;
        bench.scene = h.textContent.match(/scene (\\S+)/)?.[1] ?? "";
        bench.done = true;
        return;
      }
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}"""


def approve_to_next(
    url: str, runs: int, settle_ms: int, verbose: bool = False
) -> tuple[list[float], list[float]]:
    """(text shown ms, every panel drawn ms) per approval in headless Chromium."""
    from playwright.sync_api import sync_playwright

    text_ms, all_ms = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(url)
        page.get_by_label("username").fill("annotator")
        page.get_by_label("password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Login").click()
        page.wait_for_function("window.reviewScreen && window.reviewScreen.ready()", timeout=120_000)
        page.evaluate(IDLE_JS)
        page.locator("#item-header").click()
        for _ in range(runs):
            page.wait_for_function("window.reviewScreen.ready()", timeout=60_000)
            page.wait_for_function(
                "(ms) => performance.now() - window.__lastBusy > ms", arg=settle_ms, timeout=60_000
            )
            current = page.get_attribute('#item-header [data-review-panel="header"]', "data-item-id")
            page.evaluate(WATCH_JS, current)
            page.keyboard.press("a")
            page.wait_for_function("window.__bench.done", timeout=60_000, polling=50)
            bench = page.evaluate("window.__bench")
            text_ms.append(bench["text"])
            all_ms.append(bench["all"])
            if verbose:
                item = f"item {bench['item']} ({bench['scene']})"
                print(f"{item}: text {bench['text']:.0f} ms, every panel {bench['all']:.0f} ms", flush=True)
        browser.close()
    return text_ms, all_ms


def ask_sentences(root: Path, runs: int) -> tuple[str, list[str]]:
    """The first val scene with ScanRefer descriptions, and up to `runs` distinct ones of its sentences."""
    import json

    records = json.loads((root / "annotations" / "ScanRefer_filtered_val.json").read_text())
    scene = records[0]["scene_id"]
    sentences = list(dict.fromkeys(r["description"] for r in records if r["scene_id"] == scene))
    return scene, sentences[:runs]


def ask_server(
    paths: DemoPaths, db: Path, models, scene: str, sentences: list[str]
) -> tuple[list[float], str]:
    """Milliseconds of the Ask handler per sentence (scene warmed first), and the models' problems."""
    from app.ask_tab import ask_panels
    from app.context import AppContext
    from review import ReviewService

    service = ReviewService(f"sqlite:///{db}")
    try:
        ctx = AppContext(service, paths.root, paths.annotations, models=models)
        problems = "; ".join(p for p in (models.missing("dense3d"), models.missing("ross3d")) if p)
        ctx.loaded(scene)
        models.warm(scene)
        out = []
        for sentence in sentences:
            started = time.perf_counter()
            ask_panels(ctx, scene, sentence)
            out.append((time.perf_counter() - started) * 1000)
        return out, problems
    finally:
        service.close()


# Installed before each Ask click: from the click on, poll every animation frame until the 3D view holds
# the figure of this sentence (Plotly's data carry it in layout.meta) and two frames have been painted.
ASK_WATCH_JS = """(sentence) => {
  const bench = window.__ask = {done: false};
  window.addEventListener("click", () => { bench.t0 = performance.now(); }, {capture: true, once: true});
  const check = () => {
    const div = document.querySelector("#ask-3d .js-plotly-plot");
    const meta = div && div.layout && div.layout.meta;
    if (bench.t0 !== undefined && meta && meta.ask === sentence) {
      requestAnimationFrame(() => requestAnimationFrame(() => {
        bench.ms = performance.now() - bench.t0;
        bench.mask = div.data.some((t) => String(t.name).startsWith("Dense3D mask"));
        bench.done = true;
      }));
      return;
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}"""


def ask_to_mask(url: str, scene: str, sentences: list[str], settle_ms: int) -> tuple[list[float], int]:
    """(Ask click -> figure drawn ms per sentence, how many had a mask) in headless Chromium."""
    from playwright.sync_api import sync_playwright

    drawn, with_mask = [], 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(url)
        page.get_by_label("username").fill("annotator")
        page.get_by_label("password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Login").click()
        page.get_by_role("tab", name="Ask the scene").click()
        page.wait_for_selector("#ask-models .ask-model", timeout=120_000)
        page.locator("#ask-scene input").click()
        page.get_by_role("option", name=scene, exact=True).click()
        page.wait_for_selector("#ask-3d .js-plotly-plot", timeout=120_000)
        page.wait_for_timeout(max(settle_ms, 3000))  # the scene is warmed on the server meanwhile
        for sentence in sentences:
            page.locator("#ask-sentence textarea").fill(sentence)
            page.wait_for_timeout(settle_ms)
            page.evaluate(ASK_WATCH_JS, sentence)
            page.locator("#ask-go").click()
            page.wait_for_function("window.__ask.done", timeout=120_000, polling=50)
            bench = page.evaluate("window.__ask")
            drawn.append(bench["ms"])
            with_mask += int(bool(bench["mask"]))
        browser.close()
    return drawn, with_mask


def ms(value: float) -> str:
    return f"{value:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="approvals timed (browser and server)")
    parser.add_argument("--settle-ms", type=int, default=1000, help="browser idle time before each press")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print each timed approval")
    parser.add_argument("--demo", type=Path, default=REPO / ".demo", help="the built demo (default .demo)")
    parser.add_argument(
        "--dense3d", type=Path, default=REPO / "assets" / "dense3d", help="Dense3D checkpoint"
    )
    parser.add_argument("--ross3d", type=Path, default=REPO / "assets" / "ross3d", help="Ross3D checkpoint")
    parser.add_argument("--threads", type=int, help="torch threads for the models (default: the app's)")
    parser.add_argument("--ask-only", action="store_true", help="only the Ask the scene rows")
    args = parser.parse_args()
    paths = demo_paths(args.demo)
    if not paths.db.is_file():
        print(f"the demo is not built in {args.demo}: run `python app.py` once first", file=sys.stderr)
        return 2
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "review.db"
        shutil.copy(paths.db, db)
        server_db = Path(tmp) / "server.db"
        shutil.copy(paths.db, server_db)
        port = free_port()
        process, first_page = start_app(paths, db, port, (args.dense3d, args.ross3d))
        rows.append(("python app.py -> first page (built demo)", f"{first_page:.2f} s", "-"))
        try:
            if not args.ask_only:
                rows += review_rows(args, paths, server_db, port)
            rows += ask_rows(args, paths, Path(tmp), f"http://127.0.0.1:{port}/")
        finally:
            process.terminate()
            process.wait(timeout=20)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>10}  target")
    print("-" * (width + 22))
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>10}  {target}")
    return 0


def review_rows(
    args: argparse.Namespace, paths: DemoPaths, server_db: Path, port: int
) -> list[tuple[str, str, str]]:
    """The review rows: scene view cost, server step, approve -> next item drawn in the browser."""
    rows = scene_view_cost(paths.root)
    warm, cold = server_steps(paths, server_db, args.runs)
    rows += [
        ("server step (decide + next item), prefetched, median", ms(median(warm)), "< 300"),
        ("server step, prefetched, worst", ms(max(warm)), "< 300"),
        ("server step, next item not prefetched, median", ms(median(cold)), "-"),
        ("server step, next item not prefetched, worst", ms(max(cold)), "-"),
    ]
    if not args.no_browser and Path(CHROMIUM).exists():
        url = f"http://127.0.0.1:{port}/"
        text_ms, all_ms = approve_to_next(url, args.runs, args.settle_ms, args.verbose)
        last = f"approve -> LAST panel drawn (text, 3D, images), median of {len(all_ms)}"
        rows += [
            (f"approve -> next item's text shown, median of {len(all_ms)}", ms(median(text_ms)), "-"),
            (last, ms(median(all_ms)), "< 1 s"),
            ("approve -> LAST panel drawn, worst", ms(max(all_ms)), "< 2 s"),
            ("  each run (ms)", " ".join(f"{v:.0f}" for v in all_ms), ""),
        ]
    return rows


def ask_rows(args: argparse.Namespace, paths: DemoPaths, tmp: Path, url: str) -> list[tuple[str, str, str]]:
    """The "Ask the scene" rows: server time of one ask, and Ask click -> mask drawn in the browser."""
    from core.serve.ask import SceneModels, default_threads

    threads = args.threads or default_threads()
    models = SceneModels(paths.root, args.dense3d, args.ross3d, threads=threads)
    scene, sentences = ask_sentences(paths.root, args.runs)
    db = tmp / "ask.db"
    shutil.copy(paths.db, db)
    server, problems = ask_server(paths, db, models, scene, sentences)
    rows = [
        (f"ask: models ({threads} torch threads)", problems or "both loaded", ""),
        (f"ask handler (both models + frames + figure), {scene}, median", ms(median(server)), "-"),
        ("ask handler, worst", ms(max(server)), "-"),
    ]
    if not args.no_browser and Path(CHROMIUM).exists():
        drawn, with_mask = ask_to_mask(url, scene, sentences, args.settle_ms)
        rows += [
            (f"sentence -> mask drawn in the browser, median of {len(drawn)}", ms(median(drawn)), "< 2 s"),
            ("sentence -> mask drawn, worst", ms(max(drawn)), "< 2 s"),
            ("  sentences whose mask was not empty", f"{with_mask}/{len(drawn)}", ""),
            ("  each run (ms)", " ".join(f"{v:.0f}" for v in drawn), ""),
        ]
    return rows


if __name__ == "__main__":
    sys.exit(main())
