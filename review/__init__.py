"""The review store: a database of human decisions on the pipeline's captions, and their export.

from review import ReviewService
service = ReviewService("review.db")          # or a postgresql:// URL
item = service.next_item("alice")             # leased to alice for 15 minutes
service.approve("alice", item.id, item.head_revision, key=request_id)
"""

from review.config import ReviewConfig
from review.db import Database
from review.errors import ReviewError
from review.records import ItemKey
from review.service import ReviewService
from review.views import (
    Action,
    Conflict,
    DecisionView,
    DraftView,
    Edit,
    ItemDetail,
    ItemView,
    QueueFilter,
    RejectReason,
    ReviewStatus,
    RevisionView,
    Role,
    SubmitResult,
    UndoResult,
    UserView,
)

__all__ = [
    "Action",
    "Conflict",
    "Database",
    "DecisionView",
    "DraftView",
    "Edit",
    "ItemDetail",
    "ItemKey",
    "ItemView",
    "QueueFilter",
    "RejectReason",
    "ReviewConfig",
    "ReviewError",
    "ReviewService",
    "ReviewStatus",
    "RevisionView",
    "Role",
    "SubmitResult",
    "UndoResult",
    "UserView",
]
