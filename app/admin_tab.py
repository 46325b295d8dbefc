"""Admin actions (users, export) and who is logged in.

The role is checked on the server in every callback, so calling these endpoints directly with an
annotator's session is refused; the page also hides what a user may not use: annotators never see the
Admin tab, reviewers see only the user list. Exports go to a configured folder (never the working
directory), with a summary of what was written and the file to download.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gradio as gr

from app.access import AccessDenied, require_role, resolve_user
from app.context import AppContext
from review import ReviewError, Role, UserView
from review.exporter import EXPORT_CHOICES, ExportReport
from review.policy import role_allows

EXPORT_LABELS = {"approved": "approved items only", "all": "every item except rejected ones"}


@dataclass
class AdminLoad:
    """What the page runs on load: the user bar, and which admin controls this user sees."""

    fn: Any
    outputs: list[Any]


def _user(ctx: AppContext, request: gr.Request | None) -> UserView:
    name = (request.username if request is not None else None) if ctx.auth else ctx.local_user
    try:
        return resolve_user(ctx.service, name)
    except AccessDenied as exc:
        raise gr.Error(str(exc)) from None


def _checked(ctx: AppContext, request: gr.Request | None, *roles: Role) -> str:
    try:
        return require_role(_user(ctx, request), *roles).username
    except AccessDenied as exc:
        raise gr.Error(str(exc)) from None


def default_export_dir(ctx: AppContext) -> Path:
    """Beside the annotations (the data root) when there are any, else a folder in the system's temp."""
    if ctx.annotations is not None:
        return ctx.annotations.resolve().parent / "exports"
    return Path(tempfile.gettempdir()) / "densescan-exports"


def export_summary(report: ExportReport, status: str) -> str:
    """The export as Markdown: where it went, how many records, and a level x review-status table."""
    lines = [
        f"Exported **{report.records}** records ({EXPORT_LABELS.get(status, status)}), "
        f"{report.edited} of them edited by reviewers.",
        "",
        f"File: `{report.path}`",
        "",
    ]
    if not report.records:
        return "\n".join([*lines, "Nothing to export yet: no item has this status."])
    statuses = sorted({s for counts in report.by_level.values() for s in counts})
    lines += [
        "| level | " + " | ".join(s.replace("_", " ") for s in statuses) + " | total |",
        "|---|" + "---:|" * (len(statuses) + 1),
    ]
    for level, counts in sorted(report.by_level.items()):
        cells = [str(counts.get(s, 0)) for s in statuses]
        lines.append(f"| {level} | " + " | ".join(cells) + f" | {sum(counts.values())} |")
    return "\n".join(lines)


def write_export(ctx: AppContext, export_dir: Path, status: str, now: datetime | None = None) -> ExportReport:
    """Export into `export_dir` under a new time-stamped name, so earlier exports are kept."""
    if status not in EXPORT_CHOICES:
        raise ReviewError(None, f"unknown export status {status!r} (one of {', '.join(EXPORT_CHOICES)})")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    export_dir.mkdir(parents=True, exist_ok=True)
    path = export_dir / f"densescan-{status}-{stamp}.json"
    n = 1
    while path.exists():  # two exports within one second
        n += 1
        path = export_dir / f"densescan-{status}-{stamp}-{n}.json"
    return ctx.service.export(path, status)


def _download_copy(path: Path) -> str:
    """A copy in the system's temp folder, which Gradio serves; the export folder itself is not exposed."""
    folder = Path(tempfile.mkdtemp(prefix="densescan-export-"))
    return str(shutil.copy2(path, folder / path.name))


def build_user_bar(ctx: AppContext) -> gr.Markdown:
    """Who is logged in, and (with --auth) a logout button; filled by `build_admin_tab`'s load."""
    with gr.Row(equal_height=True):
        who = gr.Markdown(elem_id="who-am-i")
        if ctx.auth:
            gr.Button("Log out", link="/logout", size="sm", scale=0, min_width=90, elem_id="btn-logout")
    return who


def build_admin_tab(ctx: AppContext, export_dir: Path, tab: gr.Tab, who: gr.Markdown) -> AdminLoad:
    gr.Markdown("Admins add users and export reviewed data; reviewers may list users.")
    users_btn = gr.Button("List users", elem_id="btn-list-users")
    with gr.Column(visible=False) as admin_only:
        with gr.Row():
            username = gr.Textbox(label="username")
            password = gr.Textbox(label="password", type="password")
            role = gr.Dropdown([r.value for r in Role], value=Role.ANNOTATOR.value, label="role")
            add_btn = gr.Button("Add user", elem_id="btn-add-user")
        gr.Markdown(f"### Export\nExports are written to `{export_dir}` (`--export-dir` sets the folder).")
        with gr.Row():
            which = gr.Radio(
                [(label, value) for value, label in EXPORT_LABELS.items()], value="approved", label="export"
            )
            export_btn = gr.Button("Export", elem_id="btn-export")
        summary = gr.Markdown(elem_id="export-summary")
        download = gr.File(label="download the export", interactive=False, elem_id="export-file")
    result = gr.Markdown(elem_id="admin-result")

    def add_user(name: str, secret: str, new_role: str, request: gr.Request) -> str:
        _checked(ctx, request, Role.ADMIN)
        try:
            user = ctx.service.add_user(name, secret, new_role)
        except ReviewError as exc:
            raise gr.Error(str(exc)) from None
        return f"added `{user.username}` ({user.role.value})"

    def list_users(request: gr.Request) -> str:
        _checked(ctx, request, Role.REVIEWER)
        rows = [
            f"| {u.username} | {u.role.value} | {'yes' if u.active else 'no'} |"
            for u in ctx.service.list_users()
        ]
        return "| user | role | active |\n|---|---|---|\n" + "\n".join(rows)

    def export(status: str, request: gr.Request) -> tuple[str, str]:
        _checked(ctx, request, Role.ADMIN)
        try:
            report = write_export(ctx, export_dir, status or "approved")
        except (ReviewError, OSError) as exc:
            raise gr.Error(f"export failed: {exc}") from None
        return export_summary(report, status or "approved"), _download_copy(report.path)

    def on_load(request: gr.Request) -> list[Any]:
        user = _user(ctx, request)
        sees_tab = role_allows(user.role, Role.REVIEWER)
        return [
            f"Logged in as **{user.username}** ({user.role.value})",
            gr.Tab(visible=sees_tab),
            gr.Column(visible=role_allows(user.role)),  # admins only
        ]

    add_btn.click(add_user, [username, password, role], result, api_name="admin_add_user")
    users_btn.click(list_users, None, result, api_name="admin_list_users")
    export_btn.click(export, [which], [summary, download], api_name="admin_export")
    return AdminLoad(on_load, [who, tab, admin_only])
