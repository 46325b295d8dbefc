"""Assemble and serve the app: the workspaces as tabs, the hotkey script, the login check."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from app.access import LoginThrottle, login_checker
from app.admin_tab import build_admin_tab, build_user_bar, default_export_dir
from app.ask_tab import build_ask_tab
from app.context import AppContext
from app.dashboard_tab import build_dashboard_tab
from app.explorer_tab import build_explorer_tab
from app.failure_tab import build_failure_tab
from app.guard import HostGuard, HostPolicy
from app.live_plot import LIVE_PLOT_JS
from app.review_tab import build_review_tab
from app.text import CSS

# Hotkeys and the one-item-on-screen guard of the review workspace, passed to `launch(head=...)`, with the
# drawing of the live 3D views (`app.live_plot`).
# Keys act only while the review tab is visible and the focus is not in a text field (Ctrl+Enter and Esc
# also work inside the editor). The decision controls (buttons and keys) act only when every panel of
# the review tab (`data-review-panel`) carries the header's item id, the 3D view has drawn that item's
# figure (the live-plot script records what it drew) and its images are loaded, and no step is waiting for
# its answer; until then the page shows that it is loading and stale panels are hidden. A decision
# sends the on-screen "item:revision" (`window.reviewScreen.claim`, see `app.review_tab`).
HOTKEYS_JS = """
<style>
body.review-loading #review-decide button, body.review-loading #btn-theirs, body.review-loading #btn-mine {
  opacity: 0.45; cursor: progress; }
.review-panel.stale { opacity: 0; }
#review-plot { position: relative; min-height: 480px; }
#review-plot.stale #review-3d { opacity: 0; }
#plotly-loader, .plotly-loader { position: absolute; height: 0; overflow: hidden; visibility: hidden; }
#review-plot.stale::after { content: "loading the 3D view of item " attr(data-wait) "…"; position: absolute;
  left: 0; right: 0; top: 45%; text-align: center; color: #555; font-size: 15px; }
#review-loading { display: none; position: fixed; top: 8px; right: 12px; z-index: 1000; padding: 4px 10px;
  background: #fff3c4; border: 1px solid #d9b200; border-radius: 4px; font-size: 13px; }
body.review-loading #review-loading { display: block; }
.panel-title { font-weight: 600; margin: 2px 0 4px; }
#crops .prose, #highlights .prose { max-width: none; }
.thumbs { display: flex; flex-wrap: wrap; gap: 8px; }
.thumb { margin: 0; width: 176px; }
.thumbs-272 .thumb { width: 280px; }
.thumb a { display: flex; align-items: center; justify-content: center; height: 176px; background: #2b2b2b;
  border-radius: 4px; cursor: zoom-in; }
.thumbs-272 .thumb a { height: 212px; }
.thumb img { max-width: 100%; max-height: 100%; object-fit: contain; }
.thumb figcaption { font-size: 12px; line-height: 1.3; white-space: normal; overflow-wrap: anywhere; }
#review-lightbox { position: fixed; inset: 0; z-index: 2000; background: rgba(0, 0, 0, 0.85); display: flex;
  flex-direction: column; align-items: center; justify-content: center; cursor: zoom-out; }
#review-lightbox img { max-width: 94vw; max-height: 86vh; object-fit: contain; background: #111; }
#review-lightbox p { color: #fff; margin: 8px; font-size: 14px; }
</style>
<script>
(() => {
  const BUTTONS = {a: "btn-approve", r: "btn-reject", s: "btn-skip", u: "btn-undo", n: "btn-next"};
  const GATED = ["btn-approve", "btn-edit", "btn-reject", "btn-skip", "btn-undo", "btn-theirs", "btn-mine"];
  const PENDING_MS = 30000;  // a step whose answer never came (a server error) stops blocking after this
  const state = {pending: null, log: []};
  const button = (id) => {
    const el = document.getElementById(id);
    if (!el) return null;
    const b = el.tagName === "BUTTON" ? el : el.querySelector("button");
    return b && b.offsetParent !== null ? b : null;
  };
  const typing = (el) => el && (el.tagName === "TEXTAREA" || el.tagName === "INPUT" || el.isContentEditable);
  const header = () => document.querySelector('#item-header [data-review-panel="header"]');

  // the 3D view is a live plot (app.live_plot): ONE plot that lasts across items, drawn by drawLivePlots;
  // it is stale until it has drawn the figure of the panel that shows the header's item
  const plotStale = (h) => {
    if (h.dataset.plot !== "1") return false;
    const panel = document.querySelector('#review-plot [data-review-panel="plot"]');
    const div = document.getElementById("review-3d");
    if (!panel || !div || panel.dataset.itemId !== h.dataset.itemId) return true;
    return div.dataset.drawn !== panel.dataset.figure;
  };
  const consistent = (h) => {
    const id = h.dataset.itemId;
    for (const panel of document.querySelectorAll("[data-review-panel]")) {
      if (panel.dataset.itemId !== id) return false;
    }
    for (const img of document.querySelectorAll("[data-review-panel] img")) if (!img.complete) return false;
    return !plotStale(h);
  };
  const waiting = (h) => {
    const p = state.pending;
    if (!p) return false;
    if (h.dataset.render === p.render && performance.now() - p.at < PENDING_MS) return true;
    state.pending = null;
    return false;
  };
  const ready = () => { const h = header(); return !!h && !waiting(h) && consistent(h); };
  const mark = (h) => (h.dataset.itemId ? h.dataset.itemId + ":" + h.dataset.revision : "");

  const paint = () => {
    const h = header();
    const visible = !!h && h.offsetParent !== null;
    if (!document.getElementById("review-loading") && document.body) {
      const badge = document.createElement("div");
      badge.id = "review-loading";
      badge.textContent = "Loading the item: decisions wait until all of it is shown";
      document.body.appendChild(badge);
    }
    if (!visible) { document.body && document.body.classList.remove("review-loading"); return; }
    const id = h.dataset.itemId;
    for (const panel of document.querySelectorAll("[data-review-panel]")) {
      panel.classList.toggle("stale", panel.dataset.itemId !== id);
    }
    const plot = document.getElementById("review-plot");
    if (plot) { plot.classList.toggle("stale", plotStale(h)); plot.dataset.wait = id; }
    document.body.classList.toggle("review-loading", !ready());
  };
/*LIVE_PLOT_JS*/
  let scheduled = false;
  const update = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => { scheduled = false; drawLivePlots(); paint(); });
  };
  new MutationObserver(update).observe(document.documentElement, {childList: true, subtree: true});
  setInterval(update, 100);

  window.reviewScreen = {
    ready,
    log: state.log,
    // the on-screen "item:revision" of the step being sent ("" when the page was not ready)
    claim: () => {
      if (state.pending) return state.pending.mark;
      const h = header();
      return h && ready() ? mark(h) : "";
    },
  };

  // gate the decision buttons (and so the keys, which press them): capture runs before Gradio sees it
  document.addEventListener("click", (event) => {
    const b = event.target.closest && event.target.closest("button");
    const gated = (id) => {
      const el = document.getElementById(id);
      return el && (el === b || el.contains(b));
    };
    if (!b || !GATED.some(gated)) return;
    const h = header();
    const ok = ready();
    state.log.push({button: GATED.find(gated), item: h ? h.dataset.itemId : "", accepted: ok});
    if (!ok) {
      event.preventDefault(); event.stopPropagation(); event.stopImmediatePropagation(); paint();
      return;
    }
    state.pending = {render: h.dataset.render, mark: mark(h), at: performance.now()};
    paint();
  }, true);

  // thumbnails: a click opens the full image; a click or Esc closes it
  const closeLightbox = () => {
    const box = document.getElementById("review-lightbox");
    if (box) box.remove();
    return !!box;
  };
  document.addEventListener("click", (event) => {
    if (event.target.closest && event.target.closest("#review-lightbox")) { closeLightbox(); return; }
    const link = event.target.closest && event.target.closest(".thumb a[data-full]");
    if (!link) return;
    event.preventDefault();
    const box = document.createElement("div");
    box.id = "review-lightbox";
    const img = document.createElement("img");
    img.src = link.dataset.full;
    img.alt = link.dataset.caption || "";
    const caption = document.createElement("p");
    caption.textContent = (link.dataset.caption || "") + " · click or Esc to close";
    box.append(img, caption);
    document.body.appendChild(box);
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && closeLightbox()) { event.preventDefault(); return; }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      const b = button("btn-edit");
      if (b) { event.preventDefault(); b.click(); }
      return;
    }
    if (event.key === "Escape" && typing(document.activeElement)) { document.activeElement.blur(); return; }
    if (typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "e") {
      const box = document.querySelector("#editor textarea");
      if (box && box.offsetParent !== null) { event.preventDefault(); box.focus(); }
      return;
    }
    const id = BUTTONS[event.key];
    const b = id && button(id);
    if (b) { event.preventDefault(); b.click(); }
  });
})();
</script>
""".replace("/*LIVE_PLOT_JS*/", LIVE_PLOT_JS)


def build_app(ctx: AppContext, export_dir: Path | None = None) -> gr.Blocks:
    with gr.Blocks(title="DenseScan review") as demo:
        with gr.Row(equal_height=True):
            gr.Markdown("## DenseScan: review, explore, measure")
            who = build_user_bar(ctx)
        with gr.Tabs():
            with gr.Tab("Review", id="review"):
                review_load = build_review_tab(ctx)
            with gr.Tab("Scene explorer", id="explorer") as explorer_tab:
                explorer_load = build_explorer_tab(ctx)
            with gr.Tab("Ask the scene", id="ask") as ask_tab:
                ask_load = build_ask_tab(ctx)
            with gr.Tab("Dashboard", id="dashboard") as dashboard_tab:
                dashboard_load = build_dashboard_tab(ctx)
            with gr.Tab("Failure analysis", id="failures") as failure_tab:
                failure_load = build_failure_tab(ctx)
            # hidden until the page knows the user's role: annotators never see it (and the server
            # refuses its actions to them whatever the page shows)
            with gr.Tab("Admin", id="admin", visible=False) as admin_tab:
                admin_load = build_admin_tab(ctx, export_dir or default_export_dir(ctx), admin_tab, who)
        loaded = demo.load(review_load.fn, review_load.inputs, review_load.outputs)
        if review_load.then is not None:
            loaded.then(*review_load.then, show_progress="hidden")
        demo.load(admin_load.fn, None, admin_load.outputs, show_progress="hidden")
        # the other workspaces fill in when first opened, so the first page stays light
        explorer_tab.select(explorer_load.fn, explorer_load.inputs, explorer_load.outputs)
        dashboard_tab.select(dashboard_load.fn, dashboard_load.inputs, dashboard_load.outputs)
        ask_tab.select(ask_load.fn, ask_load.inputs, ask_load.outputs)
        failure_tab.select(failure_load.fn, failure_load.inputs, failure_load.outputs)
    return demo


MAX_UPLOAD = "20mb"  # the app takes no uploads; this bounds what Gradio's /upload route accepts


def launch(
    demo: gr.Blocks,
    ctx: AppContext,
    host: str = "127.0.0.1",
    port: int | None = None,
    block: bool = True,
    allowed_hosts: Sequence[str] = (),
    throttle: LoginThrottle | None = None,
) -> None:
    """Serve `demo`; with `ctx.auth` every page and API call needs a login from the review store (tried
    logins throttled). Requests for another Host, or state-changing ones from another Origin, get a 403
    (`allowed_hosts`: names a reverse proxy uses, "name" or "name:port")."""
    policy = HostPolicy.for_server(host, allowed_hosts)
    throttle = throttle or LoginThrottle()
    auth = login_checker(ctx.service, throttle) if ctx.auth else None
    auth_message = (
        f"DenseScan review: log in with your review account. After {throttle.max_user_failures} failed "
        f"logins for an account (or {throttle.max_address_failures} from one address) logins pause for "
        f"{throttle.base_delay_s:.0f} s, longer after each further lockout."
    )
    demo.queue(default_concurrency_limit=8)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        auth_message=auth_message if ctx.auth else None,
        head=HOTKEYS_JS,
        # Gradio's run history stores every call's outputs in the browser's localStorage: with a review
        # item's evidence (~0.5 MB) per call that write grows to seconds per decision, and it would keep
        # captions in the browser; the app needs none of it
        run_history=False,
        css=CSS,
        allowed_paths=ctx.allowed_paths(),
        blocked_paths=ctx.blocked_paths(),
        max_file_size=MAX_UPLOAD,
        app_kwargs={"middleware": [Middleware(HostGuard, policy=policy)]},
        prevent_thread_lock=not block,
        show_error=True,
        quiet=False,
    )
