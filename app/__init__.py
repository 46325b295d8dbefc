"""The DenseScan app: Gradio layout, callbacks and Plotly figures over `core/` and `review/`.

`app.main.build_app` assembles the workspaces (review, scene explorer, dashboard, admin);
`app.demo.build_demo` prepares the embedded demo that `python app.py` serves with no arguments.
"""
