"""Scene-level facts: the room type, the main objects and their arrangement, and scenario needs.

The room type is the scan's own `sceneType` from its meta file (`<scene>.txt`: "Office", "Bedroom /
Hotel") when it has one; otherwise a guess from the categories present (a bed makes a bedroom), given to
captioners as a hint. Scenario needs map an everyday activity to the categories that serve
it; a need is asked about only when the scene has an object for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.scene.objects import ObjectInfo
from core.scene.relations import called

ROOM_CUES: dict[str, tuple[str, ...]] = {
    "bedroom": ("bed", "nightstand", "wardrobe"),
    "bathroom": ("toilet", "bathtub", "shower", "towel"),
    "kitchen": ("refrigerator", "stove", "oven", "microwave", "kitchen cabinet"),
    "conference room": ("conference table", "whiteboard", "projector"),
    "office": ("desk", "monitor", "office chair", "file cabinet", "computer"),
    "living room": ("sofa", "couch", "coffee table", "tv", "armchair"),
}


def guess_room_type(labels: list[str]) -> str:
    """The room type whose cue categories the scene has most of; 'room' when none match."""
    scores = {
        room: sum(any(called(label, cue) for label in labels) for cue in cues)
        for room, cues in ROOM_CUES.items()
    }
    best = max(scores, key=lambda room: (scores[room], -list(ROOM_CUES).index(room)))
    return best if scores[best] else "room"


# ScanNet's sceneType strings -> the room type a sentence says ("this is a bedroom").
SCENE_TYPES: dict[str, str] = {
    "apartment": "apartment",
    "bathroom": "bathroom",
    "bedroom / hotel": "bedroom",
    "bookstore / library": "library",
    "classroom": "classroom",
    "closet": "closet",
    "computer cluster": "computer room",
    "conference room": "conference room",
    "copy/mail room": "copy room",
    "dining room": "dining room",
    "game room": "game room",
    "gym": "gym",
    "hallway": "hallway",
    "kitchen": "kitchen",
    "laundry room": "laundry room",
    "living room / lounge": "living room",
    "lobby": "lobby",
    "office": "office",
    "stairs": "stairwell",
    "storage/basement/garage": "storage room",
}


def meta_room_type(scene_type: str | None) -> str | None:
    """The room type named by a meta file's `sceneType`; None when absent or "Misc." (nothing said).
    An unknown value is used as written, lower-cased, up to its first " / "."""
    if not scene_type:
        return None
    key = " ".join(scene_type.lower().split())
    if key in ("misc.", "misc", "unknown", ""):
        return None
    return SCENE_TYPES.get(key, key.split(" / ")[0].strip() or None)


def room_type(meta: dict[str, str], labels: list[str]) -> tuple[str, str]:
    """(room type, source): the meta file's sceneType when it says one ("meta"), else the guess ("guess")."""
    stated = meta_room_type(meta.get("sceneType"))
    return (stated, "meta") if stated else (guess_room_type(labels), "guess")


@dataclass(frozen=True)
class Need:
    need: str
    questions: tuple[str, ...]
    categories: tuple[str, ...]


NEEDS = (
    Need(
        "sit down and read a book",
        ("Where can I sit down to read a book?", "I want to read for a while. Where could I sit?"),
        ("chair", "sofa", "couch", "armchair", "stool"),
    ),
    Need(
        "put down a cup of coffee",
        ("Where can I put down my coffee cup?", "I need a surface to set my mug on. What can I use?"),
        ("table", "desk", "nightstand", "counter", "dresser"),
    ),
    Need(
        "sleep", ("Where can I lie down to sleep?", "I am tired and want a nap. Where should I go?"), ("bed",)
    ),
    Need(
        "store some books",
        ("Where could I put away some books?", "I have a stack of books to store. Where would they fit?"),
        ("bookshelf", "shelf", "bookcase"),
    ),
    Need(
        "get more light",
        ("It is too dark to read here. What can I switch on?", "I need more light. What could help?"),
        ("lamp",),
    ),
    Need(
        "throw away rubbish",
        ("Where can I throw away this wrapper?", "I need to get rid of some rubbish. Where does it go?"),
        ("trash can", "trash bin", "wastebasket"),
    ),
    Need(
        "wash my hands",
        ("Where can I wash my hands?", "My hands are dirty. Where can I clean them?"),
        ("sink",),
    ),
    Need(
        "check how I look",
        ("Where can I check my appearance before going out?", "Is there somewhere I can see my reflection?"),
        ("mirror",),
    ),
    Need(
        "work on my laptop",
        ("Where can I work on my laptop?", "I have some writing to do. Where can I work?"),
        ("desk",),
    ),
    Need(
        "watch a film",
        ("Where can I watch a film?", "I want to watch the news. What do I use?"),
        ("tv", "television"),
    ),
    Need(
        "keep food cold",
        ("Where can I keep the milk cold?", "Where should the leftovers go to stay fresh?"),
        ("refrigerator",),
    ),
    Need(
        "water the plants",
        ("Which things here need watering?", "What in this room is alive and needs water?"),
        ("plant",),
    ),
    Need(
        "let fresh air in",
        ("The room is stuffy. What could I open?", "How can I let some fresh air in?"),
        ("window",),
    ),
    Need("leave the room", ("How do I get out of this room?", "Where is the way out?"), ("door",)),
    Need(
        "put away some clothes",
        ("Where can I put away my folded clothes?", "I need somewhere to store my shirts. What can I use?"),
        ("dresser", "wardrobe", "closet"),
    ),
)


def answer_objects(need: Need, objects: list[ObjectInfo]) -> list[ObjectInfo]:
    return [o for o in objects if any(called(o.label, c) for c in need.categories)]
