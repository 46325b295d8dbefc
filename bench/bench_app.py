"""App benchmark on the embedded demo (build it first with `python app.py`).

    python bench/bench_app.py [--runs 3] [--no-browser]

Measures: the time from `python app.py` to the first page served (an already built demo); the time and
payload size of a scene view (target: under 1 s and 2 MB for a 150k-vertex scene); and, in headless
Chromium, the time from pressing approve to the next item shown (target: under 500 ms). The app runs
on a copy of the demo's review database, so the demo itself is left as it was. Prints a table.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.demo import DEMO_PASSWORD, demo_paths  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(db: Path, port: int, auth: bool) -> tuple[subprocess.Popen, float]:
    """Start `python app.py` and return it with the seconds until `/` answers 200."""
    command = [sys.executable, str(REPO / "app.py"), "--db", f"sqlite:///{db}", "--port", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command + (["--auth"] if auth else []), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while True:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                if response.status == 200:
                    return process, time.perf_counter() - started
        except OSError:
            time.sleep(0.05)


def scene_view_cost(root: Path) -> tuple[int, float, float, float]:
    """(vertices, cold seconds, warm seconds, payload MB) of the largest demo scene's object view."""
    import plotly.io as pio

    from app.scene_view import SceneView, scene_figure
    from core.scene.scannet import list_scenes, load_scene

    scenes = [load_scene(root, s, with_frames=False) for s in list_scenes(root)]
    scene = max(scenes, key=lambda s: s.mesh.num_vertices)
    object_id = max(
        scene.instances, key=lambda i: len(i.vertex_indices) if i.label != "floor" else 0
    ).object_id
    started = time.perf_counter()
    cold_scene = load_scene(root, scene.scene_id, with_frames=False)
    payload = pio.to_json(scene_figure(SceneView(cold_scene), object_id))
    cold = time.perf_counter() - started
    view = SceneView(scene)
    view.background_sample  # noqa: B018
    started = time.perf_counter()
    payload = pio.to_json(scene_figure(view, object_id))
    warm = time.perf_counter() - started
    return scene.mesh.num_vertices, cold, warm, len(payload) / 1e6


IDLE_JS = """() => { window.__lastBusy = performance.now(); new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    window.__lastBusy = Math.max(window.__lastBusy, e.startTime + e.duration);
  }
}).observe({type: "longtask"}); }"""


def approve_to_next(url: str, runs: int, settle_ms: int = 1000) -> tuple[list[float], list[float]]:
    """Milliseconds from pressing `a` to the next item's text, and to its 3D view, in the browser.

    Each press waits until the browser has been idle (no long task) for `settle_ms`, as it is when a
    reviewer reads a caption before deciding: drawing a 60k-point view takes seconds of main-thread time
    in Chromium's software WebGL on a machine without a GPU, and a press during that waits for it.
    """
    from playwright.sync_api import sync_playwright

    text_ms, view_ms = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(url)
        page.get_by_label("username").fill("annotator")
        page.get_by_label("password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#item-header .item-header", timeout=60_000)
        page.wait_for_selector("#review-plot .js-plotly-plot", timeout=60_000)
        page.evaluate(IDLE_JS)
        for _ in range(runs):
            page.wait_for_function(
                "(ms) => performance.now() - window.__lastBusy > ms", arg=settle_ms, timeout=60_000
            )
            current = page.get_attribute("#item-header .item-header", "data-item-id")
            page.locator("#item-header").click()
            started = time.perf_counter()
            page.keyboard.press("a")
            page.wait_for_function(
                "(id) => { const h = document.querySelector('#item-header .item-header');"
                " return h && h.dataset.itemId !== id; }",
                arg=current,
                timeout=30_000,
                polling="raf",
            )
            text_ms.append((time.perf_counter() - started) * 1000)
            shown = page.get_attribute("#item-header .item-header", "data-item-id")
            page.wait_for_function(
                "(id) => [...document.querySelectorAll('#review-plot .gtitle')]"
                ".some((t) => t.textContent.endsWith('item ' + id))",
                arg=shown,
                timeout=30_000,
                polling="raf",
            )
            view_ms.append((time.perf_counter() - started) * 1000)
        browser.close()
    return text_ms, view_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="approvals timed in the browser")
    parser.add_argument("--settle-ms", type=int, default=1000, help="browser idle time before each press")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    paths = demo_paths(REPO / ".demo")
    if not paths.db.is_file():
        print("the demo is not built: run `python app.py` once first", file=sys.stderr)
        return 2
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "review.db"
        shutil.copy(paths.db, db)
        port = free_port()
        process, first_page = start_app(db, port, auth=True)
        rows.append(("python app.py -> first page (built demo)", f"{first_page:.2f} s", "-"))
        try:
            vertices, cold, warm, megabytes = scene_view_cost(paths.root)
            rows.append(
                (
                    f"scene view, {vertices // 1000}k-vertex scene, cold (load + build)",
                    f"{cold:.2f} s",
                    "< 1 s",
                )
            )
            rows.append(("scene view, warm (scene cached)", f"{warm * 1000:.0f} ms", "< 1 s"))
            rows.append(("scene view payload (Plotly JSON)", f"{megabytes:.2f} MB", "< 2 MB"))
            if not args.no_browser and Path(CHROMIUM).exists():
                text_ms, view_ms = approve_to_next(f"http://127.0.0.1:{port}/", args.runs, args.settle_ms)
                median, worst = statistics.median(text_ms), max(text_ms)
                rows.append(("approve -> next item shown (text), median", f"{median:.0f} ms", "< 500 ms"))
                rows.append(("approve -> next item shown (text), max", f"{worst:.0f} ms", "< 500 ms"))
                median = statistics.median(view_ms)
                rows.append(
                    ("approve -> its 3D view drawn (software WebGL), median", f"{median:.0f} ms", "-")
                )
        finally:
            process.terminate()
            process.wait(timeout=20)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>10}  target")
    print("-" * (width + 22))
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>10}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
