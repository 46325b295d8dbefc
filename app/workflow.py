"""The review workspace's flow as plain functions over `ReviewService`: show the user's item (their
leased one after a refresh, with their draft), decide on it, undo, keep drafts, resolve conflicts.

Each decision carries an idempotency key made of a random token drawn when the item was shown and the
action, so a double press replays the first result instead of deciding twice.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace

from app.text import empty_queue_text, submit_message
from review import Action, Conflict, Edit, ItemView, QueueFilter, ReviewError, ReviewService, ReviewStatus
from review.policy import same_text, work_seconds


@dataclass(frozen=True)
class Shown:
    """The item on the user's screen and the revision their decision is based on."""

    item_id: int
    base_revision: int
    token: str
    shown_at: float

    def key(self, action: str) -> str:
        return f"{self.token}:{action}"

    def active_seconds(self, now: float | None = None) -> float:
        return work_seconds((now or time.time()) - self.shown_at)


@dataclass(frozen=True)
class Screen:
    """What the workspace shows after a step."""

    item: ItemView | None
    shown: Shown | None
    editor: Edit | None  # the text in the editor: the user's draft, or the head text
    message: str = ""
    kind: str = "info"  # info | ok | error
    draft_note: str | None = None
    conflict: Conflict | None = None


def show(item: ItemView, service: ReviewService, user: str, message: str = "", kind: str = "info") -> Screen:
    """The item with the user's draft in the editor when they left one."""
    detail = service.get_item(item.id, user)
    shown = Shown(item.id, item.head_revision, uuid.uuid4().hex, time.time())
    if detail.draft is None:
        return Screen(item, shown, item.text, message, kind)
    when = detail.draft.updated_at.strftime("%H:%M:%S")
    note = f"your draft from {when} UTC was restored"
    if detail.draft.stale:
        note += " (someone saved a newer revision since you started it: check before saving)"
    return Screen(item, shown, detail.draft.text, message, kind, draft_note=note)


def open_next(
    service: ReviewService,
    user: str,
    filters: QueueFilter | None = None,
    message: str = "",
    kind: str = "info",
) -> Screen:
    """The user's leased item (after a refresh), else the next one from the queue."""
    item = service.next_item(user, filters)
    if item is None:
        empty = empty_queue_text(filters or QueueFilter())  # names the filter that left nothing
        return Screen(None, None, None, (message + " " if message else "") + empty, kind)
    return show(item, service, user, message, kind)


def decide(
    service: ReviewService,
    user: str,
    shown: Shown,
    action: Action | str,
    editor: Edit | None = None,
    reason: str | None = None,
    filters: QueueFilter | None = None,
    require_lease: bool = False,
) -> Screen:
    """Apply one decision and move on to the next item; a conflict or a refusal stays on this item.

    `require_lease`: the service refuses the decision unless the user holds the item's lease (the app
    decides only on the item it leased to the user and showed them)."""
    action = Action(action)
    held = {"require_lease": require_lease}
    try:
        current = service.get_item(shown.item_id).item
        unchanged = editor is None or same_text(editor, current.text)  # a trailing newline is no change
        if action == Action.EDIT and unchanged:
            action = Action.APPROVE  # nothing was changed: a plain approval
        elif action == Action.APPROVE and not unchanged:
            message = "You changed the text: save it with Ctrl+Enter (edit and approve), or undo your change."
            return stay(service, user, shown, editor, message, "error")
        key, seconds = shown.key(action.value), shown.active_seconds()
        item_id, base = shown.item_id, shown.base_revision
        if action == Action.APPROVE:
            result = service.approve(user, item_id, base, key, seconds, **held)
        elif action == Action.EDIT:
            assert editor is not None
            result = service.edit_and_approve(user, item_id, base, editor, key, seconds, **held)
        elif action == Action.REJECT:
            result = service.reject(user, item_id, base, reason or "other", key, seconds, **held)
        else:
            result = service.skip(user, item_id, key, seconds, **held)
    except ReviewError as exc:
        return stay(service, user, shown, editor, f"Not saved: {exc.reason}", "error")
    if not result.applied:
        assert result.conflict is not None
        return replace(
            stay(service, user, shown, editor, "Not saved: the item changed meanwhile.", "error"),
            conflict=result.conflict,
        )
    service.discard_draft(user, shown.item_id)
    return open_next(service, user, filters, submit_message(result), "ok")  # says what the decision did


def screen_refusal(shown: Shown | None, on_screen: str | None) -> str | None:
    """Why a decision must not be applied, or None: the page sends the item id and revision it shows
    ("17:2"); they must be the item this session showed the user (`shown`), at that revision. Empty:
    the page was still drawing the item."""
    mark = (on_screen or "").strip()
    if not mark:
        return "Not saved: the item was still loading; nothing was decided. Look at it and decide again."
    item_text, _, revision_text = mark.partition(":")
    if not (item_text.isdigit() and revision_text.isdigit()):
        return f"Not saved: the page sent an unreadable item mark {mark!r}; reload with n."
    if shown is None:
        return "Not saved: this session has no item on screen; reload with n."
    if (int(item_text), int(revision_text)) != (shown.item_id, shown.base_revision):
        return (
            f"Not saved: the screen showed item {item_text} (revision {revision_text}), but your item is "
            f"{shown.item_id} (revision {shown.base_revision}); nothing was decided. Reload with n."
        )
    return None


def stay(
    service: ReviewService, user: str, shown: Shown, editor: Edit | None, message: str, kind: str
) -> Screen:
    item = service.get_item(shown.item_id).item
    return Screen(item, shown, editor or item.text, message, kind)


def undo(
    service: ReviewService, user: str, shown: Shown | None, filters: QueueFilter | None = None
) -> Screen:
    """Undo the user's last decision and show that item again (leased back to them)."""
    key = f"{shown.token if shown else uuid.uuid4().hex}:undo"
    try:
        result = service.undo(user, key)
    except ReviewError as exc:
        screen = (
            open_next(service, user, filters) if shown is None else stay(service, user, shown, None, "", "")
        )
        return replace(screen, message=f"Nothing undone: {exc.reason}", kind="error")
    done = f"Undid your {result.undone.action.value} of item {result.item.id}."
    if result.item.leased_by != user:  # an undone skip of an item decided or disputed since
        status = result.item.review_status
        why = (
            "it is disputed now: a reviewer or an admin settles it"
            if status == ReviewStatus.DISPUTED
            else f"it is {status.value.replace('_', ' ')} now"
        )
        return open_next(service, user, filters, f"{done[:-1]}; {why}.", "info")
    return show(result.item, service, user, done, "ok")


def save_draft(service: ReviewService, user: str, shown: Shown | None, editor: Edit) -> str:
    """Persist the editor's text at once; returns a short status line."""
    if shown is None:
        return ""
    try:
        draft = service.save_draft(user, shown.item_id, shown.base_revision, editor)
    except ReviewError as exc:
        return f"draft not saved: {exc.reason}"
    return f"draft saved {draft.updated_at.strftime('%H:%M:%S')} UTC"


def take_theirs(service: ReviewService, user: str, shown: Shown) -> Screen:
    """Resolve a conflict by dropping one's own text and starting from the newest revision."""
    service.discard_draft(user, shown.item_id)
    item = service.get_item(shown.item_id).item
    fresh = Shown(item.id, item.head_revision, uuid.uuid4().hex, shown.shown_at)
    return Screen(item, fresh, item.text, "Showing their version; decide on it.", "info")


def keep_mine(service: ReviewService, user: str, shown: Shown, conflict: Conflict, editor: Edit) -> Screen:
    """Resolve a conflict by deciding again on top of the newest revision with one's own text."""
    item = service.get_item(shown.item_id).item
    rebased = Shown(item.id, conflict.head.number, uuid.uuid4().hex, shown.shown_at)
    save_draft(service, user, rebased, editor)
    return Screen(item, rebased, editor, "Your text is kept on top of their revision; decide again.", "info")
