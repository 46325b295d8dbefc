"""`ReviewService`: the review store's API for the app and the CLI.

Each method is one short database transaction and returns detached dataclasses from `review.views`;
users are named by username (the app keeps the `UserView` that `login` returns). Expected outcomes, such
as a save against a stale revision, come back in the result (`SubmitResult.conflict`); requests the store
refuses (unknown item, someone else's lease, approving one's own edit) raise `ReviewError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from review import decisions, drafts, queue, users
from review.config import ReviewConfig
from review.convert import decision_view, draft_view, item_view, revision_view, user_view
from review.db import Database, one_line
from review.decisions import Request
from review.errors import ReviewError
from review.exporter import ExportReport, export_records, write_export
from review.failures import Failure, add_failure
from review.importer import ImportReport, import_records
from review.passwords import burn_verify_time, hash_password, needs_rehash, verify_password
from review.records import ItemKey, check_texts, read_annotations
from review.revisions import history
from review.schema import Decision, Item, User, utcnow
from review.stats import DecisionRow, Stats, UserProgress, compute_stats, decision_log, user_progress
from review.views import (
    Action,
    DraftView,
    Edit,
    ItemDetail,
    ItemView,
    QueueFilter,
    RejectReason,
    Role,
    SubmitResult,
    UndoResult,
    UserView,
)


class ReviewService:
    def __init__(
        self,
        db: Database | str | Path,
        config: ReviewConfig | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.db = db if isinstance(db, Database) else Database(db)
        self.config = config or ReviewConfig()
        self.clock = clock  # tests move time forward to expire leases

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A write transaction whose database-level failures become `ReviewError`s."""
        try:
            with self.db.write() as session:
                yield session
        except IntegrityError as exc:
            raise ReviewError(
                None, f"the request clashes with stored data: {exc.orig}", code="conflict"
            ) from exc
        except OperationalError as exc:
            raise ReviewError(self.db.where, f"database unavailable: {one_line(exc)}", "unavailable") from exc

    # users ---------------------------------------------------------------------------------------------

    def add_user(self, username: str, password: str, role: Role | str = Role.ANNOTATOR) -> UserView:
        checked_role = users.check_new_user(username, password, str(role))
        password_hash = hash_password(password)  # slow on purpose: outside the write lock
        with self._write() as session:
            return user_view(users.add_user(session, username, password_hash, checked_role, self.clock()))

    def list_users(self) -> list[UserView]:
        with self.db.read() as session:
            return [user_view(u) for u in users.list_users(session)]

    def login(self, username: str, password: str) -> UserView | None:
        """The user when the password is right and the account active; None otherwise (no hint which)."""
        with self.db.read() as session:
            user = session.scalars(select(User).where(User.username == username)).first()
            view = user_view(user) if user else None
            stored = user.password_hash if user else None
        if stored is None or view is None:
            burn_verify_time(password)
            return None
        if not verify_password(stored, password) or not view.active:
            return None
        if needs_rehash(stored):
            new_hash = hash_password(password)
            with self._write() as session:
                session.get_one(User, view.id).password_hash = new_hash
        return view

    # queue and leases ----------------------------------------------------------------------------------

    def next_item(self, user: str, filters: QueueFilter | None = None) -> ItemView | None:
        """Lease the user their next item (the one they hold, if any); None when nothing is left for them."""
        with self._write() as session:
            account = users.find_user(session, user)
            item = queue.claim_next(
                session, account, filters or QueueFilter(), self.clock(), self.config.lease
            )
            return item_view(session, item) if item else None

    def upcoming(self, user: str, filters: QueueFilter | None = None, limit: int = 3) -> list[ItemView]:
        """The items the user's next claims would lease, in order, without leasing them (for prefetch)."""
        with self.db.read() as session:
            account = users.find_user(session, user)
            items = queue.peek_next(session, account, filters or QueueFilter(), self.clock(), limit)
            return [item_view(session, item) for item in items]

    def renew_lease(self, user: str, item_id: int) -> datetime:
        """Keep the user's lease alive (call it while they are active); returns the new expiry time."""
        with self._write() as session:
            account = users.find_user(session, user)
            item = queue.lock_item(session, item_id)
            return queue.renew(session, item, account, self.clock(), self.config.lease)

    def release(self, user: str, item_id: int) -> None:
        """Give an item back to the queue without deciding it."""
        with self._write() as session:
            account = users.find_user(session, user)
            item = queue.lock_item(session, item_id)
            if item.leased_by == account.id:
                queue.release(session, item, "released", self.clock())

    def assign(self, by: str, item_ids: list[int], assignee: str | None) -> int:
        """Reserve items for one annotator (None: for anyone); reviewers and admins only."""
        with self._write() as session:
            if users.find_user(session, by).role == Role.ANNOTATOR:
                raise ReviewError(by, "only reviewers and admins assign items", code="forbidden")
            assignee_id = users.find_user(session, assignee).id if assignee else None
            items = session.scalars(select(Item).where(Item.id.in_(item_ids))).all()
            for item in items:
                item.assignee_id = assignee_id
            return len(items)

    def list_items(
        self, filters: QueueFilter | None = None, limit: int = 50, offset: int = 0
    ) -> list[ItemView]:
        """Browse items in queue order without leasing them."""
        with self.db.read() as session:
            items = queue.list_items(session, filters or QueueFilter(), limit, offset)
            return [item_view(session, item) for item in items]

    def find_item(self, key: ItemKey) -> ItemView | None:
        with self.db.read() as session:
            item = session.scalars(
                select(Item).where(
                    Item.scene_id == key.scene_id,
                    Item.level == key.level,
                    Item.object_id == key.object_id,
                    Item.ann_id == key.ann_id,
                )
            ).first()
            return item_view(session, item) if item else None

    def get_item(self, item_id: int, user: str | None = None) -> ItemDetail:
        """The item with its revision history and decisions, and `user`'s draft of it if there is one."""
        with self.db.read() as session:
            item = session.get(Item, item_id)
            if item is None:
                raise ReviewError(f"item {item_id}", "no such item", code="not_found")
            found = session.scalars(
                select(Decision).where(Decision.item_id == item_id).order_by(Decision.id)
            ).all()
            draft = None
            if user is not None:
                stored = drafts.get_draft(session, users.find_user(session, user).id, item_id)
                draft = draft_view(session, stored, item.head_revision) if stored else None
            return ItemDetail(
                item=item_view(session, item),
                revisions=[revision_view(session, r) for r in history(session, item_id)],
                decisions=[decision_view(session, d) for d in found],
                draft=draft,
            )

    # drafts --------------------------------------------------------------------------------------------

    def save_draft(self, user: str, item_id: int, base_revision: int, text: Edit) -> DraftView:
        """Persist the user's work in progress (it survives a refresh); renews their lease."""
        check_texts(f"item {item_id}", **asdict(text))
        with self._write() as session:
            account = users.find_user(session, user)
            draft = drafts.save_draft(
                session, account, item_id, base_revision, text, self.clock(), self.config.lease
            )
            return draft_view(session, draft, session.get_one(Item, item_id).head_revision)

    def discard_draft(self, user: str, item_id: int) -> bool:
        with self._write() as session:
            return drafts.discard_draft(session, users.find_user(session, user).id, item_id)

    # decisions -----------------------------------------------------------------------------------------

    def _submit(self, user: str, request: Request) -> SubmitResult:
        if not request.key:
            raise ReviewError(f"item {request.item_id}", "a decision needs an idempotency key")
        edit = asdict(request.edit) if request.edit else {}
        check_texts(f"item {request.item_id}", request.key, note=request.note, **edit)
        with self._write() as session:
            account = users.find_user(session, user)
            return decisions.submit(session, account, request, self.config, self.clock())

    def approve(
        self,
        user: str,
        item_id: int,
        base_revision: int,
        key: str,
        active_seconds: float = 0.0,
        note: str | None = None,
        require_lease: bool = False,
    ) -> SubmitResult:
        return self._submit(
            user,
            Request(
                item_id, Action.APPROVE, base_revision, key, None, None, note, active_seconds, require_lease
            ),
        )

    def edit_and_approve(
        self,
        user: str,
        item_id: int,
        base_revision: int,
        edit: Edit,
        key: str,
        active_seconds: float = 0.0,
        note: str | None = None,
        require_lease: bool = False,
    ) -> SubmitResult:
        return self._submit(
            user,
            Request(
                item_id, Action.EDIT, base_revision, key, edit, None, note, active_seconds, require_lease
            ),
        )

    def reject(
        self,
        user: str,
        item_id: int,
        base_revision: int,
        reason: RejectReason | str,
        key: str,
        active_seconds: float = 0.0,
        note: str | None = None,
        require_lease: bool = False,
    ) -> SubmitResult:
        try:
            tag = RejectReason(reason)
        except ValueError:
            tags = ", ".join(r.value for r in RejectReason)
            raise ReviewError(
                f"item {item_id}", f"unknown reject reason {reason!r} (one of {tags})"
            ) from None
        return self._submit(
            user,
            Request(
                item_id, Action.REJECT, base_revision, key, None, tag, note, active_seconds, require_lease
            ),
        )

    def skip(
        self,
        user: str,
        item_id: int,
        key: str,
        active_seconds: float = 0.0,
        note: str | None = None,
        require_lease: bool = False,
    ) -> SubmitResult:
        """Pass on an item: it goes back to the queue for others (the user gets it again after it changes)."""
        return self._submit(
            user, Request(item_id, Action.SKIP, 0, key, None, None, note, active_seconds, require_lease)
        )

    def undo(self, user: str, key: str, item_id: int | None = None) -> UndoResult:
        """Undo the user's own last decision (on `item_id` if given) while nobody has acted on it since."""
        check_texts(f"undo by {user}", key)
        with self._write() as session:
            account = users.find_user(session, user)
            return decisions.undo(session, account, key, self.config, self.clock(), item_id)

    # data in and out -----------------------------------------------------------------------------------

    def import_annotations(self, folder: str | Path, progress: bool = False) -> ImportReport:
        """Load `<folder>/densescan.json`: validated in full first, then written in one transaction."""
        records = read_annotations(folder)
        source = Path(folder)
        with self._write() as session:
            return import_records(session, records, source, self.config, self.clock(), progress)

    def send_failure(self, by: str, failure: Failure) -> tuple[ItemView, bool]:
        """Put a model's failing sample in front of a person (`review.failures`): (the item, whether it is
        new); sending the same sample of the same report again changes nothing."""
        check_texts(f"sample {failure.sample_key}", description=failure.description, reason=failure.reason)
        check_texts(f"sample {failure.sample_key}", output=failure.model_output, key_text=failure.sample_key)
        with self._write() as session:
            account = users.find_user(session, by)
            item, created = add_failure(session, failure, account, self.config, self.clock())
            return item_view(session, item), created

    def export(self, out: str | Path, status: str = "approved") -> ExportReport:
        with self.db.read() as session:
            records = export_records(session, status)
        return write_export(out, records)

    def stats(self) -> Stats:
        with self.db.read() as session:
            return compute_stats(session)

    def progress(self, username: str) -> UserProgress:
        """One annotator's progress line (votes today, the queue, their acceptance rate)."""
        with self.db.read() as session:
            return user_progress(session, username, self.clock())

    def decision_log(self) -> list[DecisionRow]:
        """Every decision, flattened (for progress over time)."""
        with self.db.read() as session:
            return decision_log(session)

    def close(self) -> None:
        self.db.close()
