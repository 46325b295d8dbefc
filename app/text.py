"""HTML fragments and the sentences of the app. Every caption, name and note is escaped here before it
reaches the page, so a caption holding markup or a script shows as text. The wording a user reads after
a decision, in front of an empty list and beside a flagged item is made here, in one place."""

from __future__ import annotations

from html import escape
from typing import Any

from review import Action, Conflict, ItemView, QueueFilter, ReviewStatus, SubmitResult
from review.why import NO_REASON, Why, reason_choices, reason_label

VERDICT_CLASS = {"supported": "claim-ok", "contradicted": "claim-bad", "unverifiable": "claim-unk"}


def claim_spans(caption: str, claims: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, verdict) spans of the claims' text in the caption, left to right.

    A claim's text is searched case-insensitively after the previous match of the same text, so a word
    claimed twice marks two places; claims whose text is absent are left out (they are listed apart).
    """
    lowered = caption.lower()
    spans: list[tuple[int, int, str]] = []
    searched_from: dict[str, int] = {}
    for claim in claims:
        needle = str(claim.get("text") or "").lower()
        if not needle:
            continue
        start = lowered.find(needle, searched_from.get(needle, 0))
        while start >= 0 and any(s < start + len(needle) and start < e for s, e, _ in spans):
            start = lowered.find(needle, start + 1)
        if start < 0:
            continue
        searched_from[needle] = start + len(needle)
        spans.append((start, start + len(needle), str(claim.get("verdict") or "unverifiable")))
    return sorted(spans)


def caption_html(caption: str, claims: list[dict[str, Any]] | None = None) -> str:
    """The caption, escaped, with each claim marked by its verdict (supported / contradicted /
    unverifiable) and its verdict in a tooltip."""
    claims = claims or []
    parts, cursor = [], 0
    for start, end, verdict in claim_spans(caption, claims):
        parts.append(escape(caption[cursor:start]))
        css = VERDICT_CLASS.get(verdict, "claim-unk")
        parts.append(f'<mark class="{css}" title="{escape(verdict)}">{escape(caption[start:end])}</mark>')
        cursor = end
    parts.append(escape(caption[cursor:]))
    return f'<div class="caption">{"".join(parts)}</div>'


def claims_table_html(claims: list[dict[str, Any]]) -> str:
    """The verification claims with their verdicts, and the checker's note where it gave one (why a claim is
    unverifiable: "ambiguous anchor (3 chair)", "unparsed", "no piano in the scene")."""
    if not claims:
        return '<p class="muted">no verification claims for this caption</p>'
    rows = []
    for claim in claims:
        verdict = str(claim.get("verdict") or "unverifiable")
        css = VERDICT_CLASS.get(verdict, "claim-unk")
        text = str(claim.get("text", ""))
        anchors = [str(a) for a in claim.get("anchors") or [] if str(a) not in text]  # only what adds
        shown = text + (f" ({', '.join(anchors)})" if anchors else "")
        rows.append(
            f"<tr><td>{escape(str(claim.get('kind', '')))}</td><td>{escape(shown)}</td>"
            f'<td><span class="{css}">{escape(verdict)}</span></td>'
            f'<td class="muted">{escape(str(claim.get("note") or ""))}</td></tr>'
        )
    return (
        '<table class="claims"><tr><th>kind</th><th>claim</th><th>verdict</th><th>note</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def item_header_html(item: ItemView, draft_note: str | None = None) -> str:
    key = item.key
    facts = [
        f"<b>{escape(item.object_name.replace('_', ' '))}</b>",
        f"scene {escape(key.scene_id)}",
        f"object {escape(str(key.object_id))}",
        f"level {escape(key.level)}",
        f"pipeline: {escape(item.pipeline_status)} ({item.confidence:.2f})",
        f"review: {escape(str(item.review_status))}",
        f"revision {item.head_revision}",
    ]
    note = f'<div class="note">{escape(draft_note)}</div>' if draft_note else ""
    changed = (
        '<div class="note">the pipeline changed this text after human work</div>'
        if item.pipeline_changed
        else ""
    )
    return f'<div class="item-header" data-item-id="{item.id}">{" · ".join(facts)}</div>{note}{changed}'


def other_levels_html(entries: list[tuple[str, str]]) -> str:
    """(level, text) pairs of the other captions mentioning the object."""
    if not entries:
        return '<p class="muted">no other captions mention this object</p>'
    rows = "".join(f"<li><b>{escape(level)}</b>: {escape(text)}</li>" for level, text in entries)
    return f'<ul class="other-levels">{rows}</ul>'


def conflict_html(conflict: Conflict, mine: str) -> str:
    """Both versions side by side, and what the user can do."""
    theirs = conflict.head.text.description
    who = conflict.head.author or "the pipeline"
    return (
        '<div class="conflict">'
        f"<p><b>Conflict.</b> {escape(conflict.message)}.</p>"
        '<div class="versions">'
        f"<div><h4>Theirs (revision {conflict.head.number}, {escape(who)}, {escape(str(conflict.head.kind))})"
        f"</h4><p>{escape(theirs)}</p></div>"
        f"<div><h4>Yours (from revision {conflict.base_revision})</h4><p>{escape(mine)}</p></div>"
        "</div><p>Take theirs, or keep yours and decide again on top of theirs.</p></div>"
    )


# why the pipeline flagged an item ----------------------------------------------------------------------

ALL_REASONS = "all"  # the reason filter's "no restriction" value


def reason_filter_choices() -> list[tuple[str, str]]:
    """(label, value) pairs of the reason filter dropdowns: any reason, each reason, none recorded."""
    return [("any reason", ALL_REASONS), *reason_choices()]


def reason_filter(value: str | None) -> tuple[str, ...]:
    """The `QueueFilter.flag_reasons` of a reason dropdown's value."""
    return () if not value or value == ALL_REASONS else (value,)


def _listing(title: str, entries: tuple[str, ...] | list[str], css: str = "") -> str:
    if not entries:
        return ""
    opening = f'<li class="{css}">' if css else "<li>"
    items = "".join(f"{opening}{escape(e)}</li>" for e in entries)
    return f"<div><b>{escape(title)}</b><ul>{items}</ul></div>"


def why_html(why: Why) -> str:
    """Why the pipeline flagged or rejected the item: its reasons, the model's answer on the views, where
    the views disagreed, and which claims are contradicted or unverifiable."""
    if not why.checked:
        return (
            '<div class="why" data-status="unchecked"><p class="muted">the pipeline does not fact-check '
            "captions at this level</p></div>"
        )
    if why.flagged:
        reasons = "; ".join(why.reason_labels)
        head = f'<p class="why-head"><b>Why {escape(why.pipeline_status)}:</b> {escape(reasons)}</p>'
    else:
        head = '<p class="why-head muted">the pipeline\'s verification found nothing to flag</p>'
    parts = [head]
    if why.consistency_answer:
        parts.append(f"<div><b>Consistency check:</b> <q>{escape(why.consistency_answer)}</q></div>")
    parts.append(_listing("Where the views disagreed", why.conflicts))
    parts.append(_listing("Contradicted claims", why.contradicted, "claim-bad"))
    parts.append(_listing("Unverifiable claims", why.unverifiable, "claim-unk"))
    status = escape(why.pipeline_status if why.recorded or not why.flagged else "unrecorded")
    return f'<div class="why" data-status="{status}">{"".join(parts)}</div>'


# what a decision did ---------------------------------------------------------------------------------

_DONE = {Action.APPROVE: "Approved", Action.EDIT: "Edited", Action.REJECT: "Rejected", Action.SKIP: "Skipped"}
_NEXT = {
    ReviewStatus.NEEDS_APPROVAL: "waits for a second approval by someone else",
    ReviewStatus.IN_REVIEW: "sent to double review: a second person decides too",
    ReviewStatus.DISPUTED: "the two reviews disagree: a reviewer or an admin settles it",
    ReviewStatus.PENDING: "it waits in the queue",
}


def decision_message(
    action: Action | str, status: ReviewStatus | str, item_id: int, replayed: bool = False
) -> str:
    """What a decision did, from the status the item ended in (`DecisionView.status_after`): "Edited
    item 4; waits for a second approval by someone else.", "Approved item 4; sent to double review: ...".
    """
    action, status = Action(action), ReviewStatus(status)
    done = _DONE[action]
    if action == Action.EDIT and status == ReviewStatus.APPROVED:
        text = f"Edited and approved item {item_id}."
    elif action == Action.SKIP:
        rest = (
            "it goes back to the queue"
            if status == ReviewStatus.PENDING
            else f"it stays {_status_words(status)}"
        )
        text = f"Skipped item {item_id}; {rest} for someone else."
    elif status in _NEXT:
        text = f"{done} item {item_id}; {_NEXT[status]}."
    elif (status == ReviewStatus.APPROVED) == (action != Action.REJECT):
        text = f"{done} item {item_id}."
    else:  # the vote settled the item the other way (a third review decided before this one)
        text = f"{done} item {item_id}; it is {_status_words(status)}."
    return f"Already saved: {text}" if replayed else text


def submit_message(result: SubmitResult) -> str:
    """The message of an applied decision (the service's outcome, not what the button said)."""
    if result.decision is None:
        return f"Item {result.item.id} is {_status_words(result.item.review_status)}."
    d = result.decision
    return decision_message(d.action, d.status_after, d.item_id, result.replayed)


def _status_words(status: ReviewStatus | str) -> str:
    words = {
        ReviewStatus.IN_REVIEW: "in double review",
        ReviewStatus.NEEDS_APPROVAL: "waiting for a second approval",
    }
    status = ReviewStatus(status)
    return words.get(status, status.value.replace("_", " "))


# empty lists ------------------------------------------------------------------------------------------

_REVIEW_WORD = {
    ReviewStatus.PENDING: "pending",
    ReviewStatus.IN_REVIEW: "double-review",
    ReviewStatus.NEEDS_APPROVAL: "awaiting-approval",
    ReviewStatus.DISPUTED: "disputed",
    ReviewStatus.APPROVED: "approved",
    ReviewStatus.REJECTED: "rejected",
}


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _qualifiers(f: QueueFilter, this_scene: str | None) -> tuple[str, list[str]]:
    """(adjectives before "items", phrases after it) of a filter."""
    review = _either([_REVIEW_WORD[ReviewStatus(s)] for s in f.review_statuses]) if f.review_statuses else ""
    pipeline = _either(list(f.pipeline_statuses)) if f.pipeline_statuses else ""
    after = []
    if pipeline and review:
        after.append(f"that the pipeline {pipeline}")
    if f.categories:
        after.append(f"of category {_either([c.replace('_', ' ') for c in f.categories])}")
    if f.levels:
        after.append(f"at level {_either(list(f.levels))}")
    if f.scene_ids:
        after.append(
            "in this scene" if f.scene_ids == (this_scene,) else f"in scene {_either(list(f.scene_ids))}"
        )
    if f.flag_reasons:
        recorded = [reason_label(r) for r in f.flag_reasons if r != NO_REASON]
        comma = "," if NO_REASON in f.flag_reasons else ""
        if recorded:
            after.append(f"flagged because {_either(recorded)}{comma}")
        if NO_REASON in f.flag_reasons:
            after.append("or with no reason recorded" if recorded else "flagged with no reason recorded")
    if f.assignee:
        after.append(f"assigned to {f.assignee}")
    adjectives = " ".join(w for w in (review, "" if review else pipeline) if w)
    return adjectives, after


def empty_filter_text(f: QueueFilter, this_scene: str | None = None) -> str:
    """Why a list is empty, in the filter's words: "no rejected items in this scene", "no flagged items at
    level frame" (`this_scene`: the scene the list is about, said as "this scene")."""
    adjectives, after = _qualifiers(f, this_scene)
    return " ".join(["no", *([adjectives] if adjectives else []), "items", *after])


def empty_queue_text(f: QueueFilter) -> str:
    """What an empty review queue says: which filter left nothing for this user."""
    adjectives, after = _qualifiers(f, None)
    if not adjectives and not after:
        return "Nothing left in your queue."
    return (
        " ".join(
            ["Nothing left for you to review:", "no", *([adjectives] if adjectives else []), "items", *after]
        )
        + "."
    )


def empty_html(text: str) -> str:
    return f'<p class="muted empty-filter">{escape(text)}</p>'


def message_html(text: str, kind: str = "info") -> str:
    return f'<div class="msg msg-{escape(kind)}">{escape(text)}</div>'


def progress_html(done_today: int, queue: dict[str, int], acceptance: float | None) -> str:
    queue_text = ", ".join(f"{escape(k)} {v}" for k, v in queue.items() if v) or "empty"
    rate = f"{acceptance:.0%}" if acceptance is not None else "n/a"
    return (
        f'<div class="progress">done today <b>{done_today}</b> · queue: {queue_text} · '
        f"your acceptance rate <b>{rate}</b></div>"
    )


CSS = """
.caption { font-size: 1.1em; line-height: 1.6; }
mark.claim-ok, span.claim-ok { background: #c8f0c8; }
mark.claim-bad, span.claim-bad { background: #f6b8b8; text-decoration: underline wavy #b00; }
mark.claim-unk, span.claim-unk { background: #f3e6a6; }
.muted { color: #888; }
.note { color: #a35b00; }
.conflict { border: 2px solid #c33; padding: 8px; border-radius: 6px; }
.conflict .versions { display: flex; gap: 16px; }
.conflict .versions > div { flex: 1; background: #fafafa; padding: 6px; }
.msg-error { color: #b00; }
.msg-ok { color: #070; }
table.claims td, table.claims th { padding: 2px 8px; }
.hotkeys kbd { border: 1px solid #aaa; border-radius: 3px; padding: 0 4px; }
.why { border-left: 4px solid #d08a00; padding: 4px 10px; background: #fffaf0; }
.why[data-status="rejected"] { border-left-color: #b00; background: #fff4f4; }
.why[data-status="accepted"], .why[data-status="unchecked"] { border-left-color: #ccc; background: none; }
.why ul { margin: 2px 0 6px 18px; }
.why li.claim-bad { background: #f6b8b8; }
.why li.claim-unk { background: #f3e6a6; }
"""
