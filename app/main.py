"""Assemble and serve the app: the workspaces as tabs, the hotkey script, the login check."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app.admin_tab import build_admin_tab
from app.context import AppContext
from app.dashboard_tab import build_dashboard_tab
from app.explorer_tab import build_explorer_tab
from app.review_tab import build_review_tab
from app.text import CSS

# Hotkeys of the review workspace, passed to `launch(head=...)`. Keys act only while the review tab is
# visible and the focus is not in a text field (Ctrl+Enter and Esc also work inside the editor).
HOTKEYS_JS = """
<script>
(() => {
  const BUTTONS = {a: "btn-approve", r: "btn-reject", s: "btn-skip", u: "btn-undo", n: "btn-next"};
  const button = (id) => {
    const el = document.getElementById(id);
    if (!el) return null;
    const b = el.tagName === "BUTTON" ? el : el.querySelector("button");
    return b && b.offsetParent !== null ? b : null;
  };
  const typing = (el) => el && (el.tagName === "TEXTAREA" || el.tagName === "INPUT" || el.isContentEditable);
  document.addEventListener("keydown", (event) => {
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
"""


def build_app(ctx: AppContext, export_dir: Path | None = None) -> gr.Blocks:
    with gr.Blocks(title="DenseScan review") as demo:
        gr.Markdown("## DenseScan: review, explore, measure")
        with gr.Tabs():
            with gr.Tab("Review", id="review"):
                review_load = build_review_tab(ctx)
            with gr.Tab("Scene explorer", id="explorer") as explorer_tab:
                explorer_load = build_explorer_tab(ctx)
            with gr.Tab("Dashboard", id="dashboard") as dashboard_tab:
                dashboard_load = build_dashboard_tab(ctx)
            with gr.Tab("Admin", id="admin"):
                build_admin_tab(ctx, export_dir or Path("densescan-export"))
        loaded = demo.load(review_load.fn, review_load.inputs, review_load.outputs)
        if review_load.then is not None:
            loaded.then(*review_load.then, show_progress="hidden")
        # the other workspaces fill in when first opened, so the first page stays light
        explorer_tab.select(explorer_load.fn, explorer_load.inputs, explorer_load.outputs)
        dashboard_tab.select(dashboard_load.fn, dashboard_load.inputs, dashboard_load.outputs)
    return demo


def launch(
    demo: gr.Blocks,
    ctx: AppContext,
    host: str = "127.0.0.1",
    port: int | None = None,
    block: bool = True,
) -> None:
    """Serve `demo`; with `ctx.auth` every page and API call needs a login from the review store."""
    auth = (
        (lambda username, password: ctx.service.login(username, password) is not None) if ctx.auth else None
    )
    demo.queue(default_concurrency_limit=8)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        auth_message="DenseScan review: log in with your review account" if ctx.auth else None,
        head=HOTKEYS_JS,
        css=CSS,
        allowed_paths=ctx.allowed_paths(),
        prevent_thread_lock=not block,
        show_error=True,
        quiet=False,
    )
