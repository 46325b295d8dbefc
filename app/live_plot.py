"""3D views that keep one Plotly plot for the whole session, drawn by the page's script.

Gradio's plot component mounts a new Plotly plot (a new WebGL context) for every figure it receives, and
lets the old one draw it too before it goes: in the software WebGL of a machine without a GPU that is
most of a second per answer. A live plot is instead an HTML panel carrying the figure's JSON; the script
below draws it with `Plotly.react` into one plot that lives in the panel's block, so a new figure only
replaces the traces (and the camera stays where the user left it, per `layout.uirevision`). The review
workspace's 3D view is one too (`app.item_media.plot_html`); its guard (`app.main.HOTKEYS_JS`) waits until
the plot has drawn the item's figure.
"""

from __future__ import annotations

import uuid
from html import escape
from typing import Any

import gradio as gr
from gradio.components.plot import PlotData

# an empty figure: a hidden gr.Plot holding it makes Gradio load plotly.js into the page for the script
PLOTLY_LOADER = PlotData(type="plotly", plot='{"data": [], "layout": {"height": 10}}')


def live_plot_html(
    block_id: str,
    figure: PlotData | None,
    note: str = "",
    *,
    view_id: str = "",
    classes: str = "",
    attrs: str = "",
) -> str:
    """The panel of a live plot in the block `block_id` (a `gr.HTML` elem_id): the figure as JSON and a
    fresh `data-figure` name (the script draws each name once); without a figure, `note` instead.
    `view_id` names the plot element the script creates; `classes` and `attrs` (already escaped) are
    more classes and attributes of the panel: the review workspace marks its panels with their item."""
    opening = (
        f'<div class="{escape(" ".join(["live-plot", *classes.split()]))}" data-block="{escape(block_id)}"'
        f' data-view="{escape(view_id)}" {attrs}'.rstrip()
    )
    if figure is None:
        return f'{opening} data-figure=""><p class="muted">{escape(note)}</p></div>'
    return (
        f'{opening} data-figure="{uuid.uuid4().hex[:12]}">'
        f'<div hidden class="figure-json" data-json="{escape(figure.plot)}"></div></div>'
    )


def live_plot_value(block_id: str, figure: Any, note: str = "") -> Any:
    """What an event returns for a live plot: the panel of `figure` (None: `note`), or a `gr.skip()`
    passed through unchanged."""
    if isinstance(figure, type(gr.skip())):
        return figure
    return live_plot_html(block_id, figure, note)


def live_plot_block(block_id: str, label: str) -> gr.HTML:
    """The `gr.HTML` a live plot is shown in, with a hidden plot that loads plotly.js beside it."""
    block = gr.HTML(
        live_plot_html(block_id, None),
        label=label,
        show_label=True,
        container=True,  # the label shows, as on a plot
        elem_id=block_id,
        elem_classes=["live-plot-block"],
    )
    gr.Plot(value=PLOTLY_LOADER, container=False, elem_classes=["plotly-loader"])
    return block


# Part of the page's script (`app.main`): for every live-plot panel, draw its figure into the one plot of
# its block (created on first use, after the panel), once per `data-figure` name; a panel without a
# figure empties and hides the plot. Once Plotly has drawn a figure and the browser has painted it, the
# plot's `data-drawn` holds the figure's name: the review workspace waits for it before it takes a
# decision. Runs on every page change (MutationObserver) and every 100 ms.
LIVE_PLOT_JS = """
  const livePlotView = (panel) => {
    const block = document.getElementById(panel.dataset.block);
    if (!block || !block.contains(panel)) return null;
    let div = block.querySelector(":scope .live-plot-view");
    if (!div) {
      div = document.createElement("div");
      div.className = "live-plot-view";
      if (panel.dataset.view) div.id = panel.dataset.view;
      block.appendChild(div);
    }
    return div;
  };
  const drawLivePlots = () => {
    if (!window.Plotly) return;
    for (const panel of document.querySelectorAll(".live-plot[data-block]")) {
      const div = livePlotView(panel);
      const figure = panel.dataset.figure || "";
      if (!div || div.__figure === figure) continue;
      div.__figure = figure;
      div.dataset.drawn = "";
      const source = panel.querySelector(".figure-json");
      if (!source) { window.Plotly.purge(div); div.style.display = "none"; continue; }
      div.style.display = "";
      const spec = JSON.parse(source.dataset.json);
      const drawn = () => requestAnimationFrame(() => requestAnimationFrame(() => {
        if (div.__figure === figure) div.dataset.drawn = figure;
      }));
      const config = {responsive: true, displaylogo: false};
      window.Plotly.react(div, spec.data, spec.layout, config).then(drawn, drawn);
    }
  };
"""
