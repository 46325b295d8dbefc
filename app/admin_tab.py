"""Admin actions (users, export): the role is checked on the server in every callback, so calling these
endpoints directly with an annotator's session is refused."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app.access import AccessDenied, require_role, resolve_user
from app.context import AppContext
from review import ReviewError, Role


def _checked(ctx: AppContext, request: gr.Request | None, *roles: Role) -> str:
    name = (request.username if request is not None else None) if ctx.auth else ctx.local_user
    try:
        return require_role(resolve_user(ctx.service, name), *roles).username
    except AccessDenied as exc:
        raise gr.Error(str(exc)) from None


def build_admin_tab(ctx: AppContext, export_dir: Path) -> None:
    gr.Markdown("Admins add users and export reviewed data; reviewers may list users.")
    with gr.Row():
        username = gr.Textbox(label="username")
        password = gr.Textbox(label="password", type="password")
        role = gr.Dropdown([r.value for r in Role], value=Role.ANNOTATOR.value, label="role")
        add_btn = gr.Button("Add user", elem_id="btn-add-user")
    users_btn = gr.Button("List users")
    result = gr.Markdown()
    export_btn = gr.Button("Export approved items")

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

    def export(request: gr.Request) -> str:
        _checked(ctx, request, Role.ADMIN)
        report = ctx.service.export(export_dir)
        return f"exported: {report}"

    add_btn.click(add_user, [username, password, role], result, api_name="admin_add_user")
    users_btn.click(list_users, None, result, api_name="admin_list_users")
    export_btn.click(export, None, result, api_name="admin_export")
