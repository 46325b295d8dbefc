"""HTML fragments of the app. Every caption, name and note is escaped here before it reaches the page,
so a caption holding markup or a script shows as text."""

from __future__ import annotations

from html import escape
from typing import Any

from review import Conflict, ItemView

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
    if not claims:
        return '<p class="muted">no verification claims for this caption</p>'
    rows = []
    for claim in claims:
        verdict = str(claim.get("verdict") or "unverifiable")
        css = VERDICT_CLASS.get(verdict, "claim-unk")
        anchors = ", ".join(str(a) for a in claim.get("anchors") or [])
        rows.append(
            f"<tr><td>{escape(str(claim.get('kind', '')))}</td><td>{escape(str(claim.get('text', '')))}"
            f"{' (' + escape(anchors) + ')' if anchors else ''}</td>"
            f'<td><span class="{css}">{escape(verdict)}</span></td></tr>'
        )
    return (
        '<table class="claims"><tr><th>kind</th><th>claim</th><th>verdict</th></tr>'
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
"""
