"""Read ScanNet's label table (`scannetv2-labels.combined.tsv`) and map raw labels to benchmark ids.

Aggregation files name objects by free-text raw labels; every benchmark scores them by an id from this
table (REFERENCE §1):

- NYU40 (`nyu40id`, `nyu40class`): the labels mesh and the ScanNet20 benchmark, whose classes are the
  NYU40 ids in `SCANNET20_NYU40_IDS`.
- ScanNet200: the table's own `id` column. The benchmark keeps the 200 ids in `SCANNET200_IDS` (ScanNet's
  `VALID_CLASS_IDS_200`); any other id is ignored there, so `scannet200_id` returns 0 for it.
- ScanRefer's unique / multiple split: 17 NYU40 class names plus "others" (`scanrefer_class`).

Unknown raw labels (absent from the table): ids are 0, ScanNet's "unannotated" that every evaluation
ignores, so a typo never silently becomes a real class; names are "otherprop" (NYU40's catch-all), so
text consumers still get a valid class name. Lookup is exact first (as ScanNet's tools do), then
case-, space- and underscore-insensitive.

The header must hold `id`, `raw_category`, `category`, `nyu40id` and `nyu40class`; extra columns (count,
eigen13, ModelNet, WordNet, mpcat40 ...) are kept as text. A malformed file raises `SceneError` naming the
line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.scene.errors import SceneError

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "assets" / "labels" / "scannetv2-labels.synthetic.tsv"

REQUIRED_COLUMNS = ("id", "raw_category", "category", "nyu40id", "nyu40class")
UNKNOWN_NAME = "otherprop"

# ScanNet20 semantic-segmentation classes, as NYU40 ids.
SCANNET20_NYU40_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

# ScanNet200 benchmark classes: values of the table's `id` column (ScanNet's VALID_CLASS_IDS_200).
SCANNET200_IDS: tuple[int, ...] = (
    *range(1, 12), 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 24, 26, 27, 28, 29, 31, 32, 33, 34, 35, 36,
    38, 39, 40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 51, 52, 54, 55, 56, 57, 58, 59, 62, 63, 64, 65, 66,
    67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 82, 84, 86, 87, 88, 89, 90, 93, 95, 96, 97,
    98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 110, 112, 115, 116, 118, 120, 121, 122, 125, 128,
    130, 131, 132, 134, 136, 138, 139, 140, 141, 145, 148, 154, 155, 156, 157, 159, 161, 163, 165, 166,
    168, 169, 170, 177, 180, 185, 188, 191, 193, 195, 202, 208, 213, 214, 221, 229, 230, 232, 233, 242,
    250, 261, 264, 276, 283, 286, 300, 304, 312, 323, 325, 331, 342, 356, 370, 392, 395, 399, 408, 417,
    488, 540, 562, 570, 572, 581, 609, 748, 776, 1156, *range(1163, 1177), *range(1178, 1192),
)  # fmt: skip

# ScanRefer's 18 classes for the unique / multiple split: these NYU40 class names, everything else "others".
SCANREFER_CLASSES: tuple[str, ...] = (
    "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture", "counter", "desk",
    "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub", "others",
)  # fmt: skip


def normalize_label(raw: str) -> str:
    """Lower case, underscores as spaces, single spaces: 'Office_Chair ' -> 'office chair'."""
    return " ".join(raw.replace("_", " ").lower().split())


@dataclass(frozen=True)
class LabelRow:
    """One row of the table; `extra` holds the remaining columns by header name."""

    scannet_id: int
    raw_category: str
    category: str
    nyu40_id: int
    nyu40_class: str
    line: int
    extra: dict[str, str] = field(default_factory=dict, compare=False)


def _parse_int(path: Path, line_no: int, column: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SceneError(path, f"line {line_no}, column '{column}': {text!r} is not an integer") from None
    if not low <= value <= high:
        raise SceneError(path, f"line {line_no}, column '{column}': {value} is outside {low}..{high}")
    return value


def _parse_row(path: Path, line_no: int, header: list[str], fields: list[str]) -> LabelRow:
    if len(fields) > len(header):
        raise SceneError(path, f"line {line_no}: {len(fields)} fields but the header has {len(header)}")
    values = dict(zip(header, fields))
    for column in REQUIRED_COLUMNS:
        if column not in values:
            raise SceneError(path, f"line {line_no}: column '{column}' is missing ({len(fields)} fields)")
    raw = values["raw_category"].strip()
    if not raw:
        raise SceneError(path, f"line {line_no}, column 'raw_category': empty")
    extra = {k: v for k, v in values.items() if k not in REQUIRED_COLUMNS}
    return LabelRow(
        scannet_id=_parse_int(path, line_no, "id", values["id"].strip(), 1, 10**6),
        raw_category=raw,
        category=values["category"].strip(),
        nyu40_id=_parse_int(path, line_no, "nyu40id", values["nyu40id"].strip(), 0, 40),
        nyu40_class=values["nyu40class"].strip() or UNKNOWN_NAME,
        line=line_no,
        extra=extra,
    )


class LabelMap:
    """Raw label -> ids and names, from one label table."""

    def __init__(self, rows: list[LabelRow], path: Path | None = None):
        self.path = path
        self.rows: dict[str, LabelRow] = {}
        self._normalized: dict[str, LabelRow] = {}
        for row in rows:
            if row.raw_category in self.rows:
                first = self.rows[row.raw_category].line
                raise SceneError(
                    path, f"line {row.line}: raw_category {row.raw_category!r} repeats line {first}"
                )
            self.rows[row.raw_category] = row
            self._normalized.setdefault(normalize_label(row.raw_category), row)

    @classmethod
    def from_tsv(cls, path: str | Path) -> LabelMap:
        """Parse a tab-separated label table with a header row (blank lines are skipped)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SceneError(path, f"cannot read the label table ({exc.strerror or exc})") from exc
        except UnicodeDecodeError as exc:
            raise SceneError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        lines = text.splitlines()
        if not lines or not lines[0].strip():
            raise SceneError(path, "line 1: empty; expected the header row")
        header = [name.strip() for name in lines[0].split("\t")]
        for column in REQUIRED_COLUMNS:
            if column not in header:
                raise SceneError(path, f"line 1: header lacks column '{column}' (is the file tab-separated?)")
        rows = [
            _parse_row(path, number, header, line.rstrip("\r").split("\t"))
            for number, line in enumerate(lines[1:], start=2)
            if line.strip()
        ]
        return cls(rows, path)

    @classmethod
    def default(cls) -> LabelMap:
        """The table shipped with the project (the categories of the synthetic generator)."""
        return cls.from_tsv(DEFAULT_TABLE)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, raw: str) -> bool:
        return self.row(raw) is not None

    def row(self, raw: str) -> LabelRow | None:
        """The table row of a raw label: exact match first, then the normalized spelling."""
        return self.rows.get(raw) or self._normalized.get(normalize_label(raw))

    def nyu40_id(self, raw: str) -> int:
        row = self.row(raw)
        return row.nyu40_id if row else 0

    def nyu40_name(self, raw: str) -> str:
        row = self.row(raw)
        return row.nyu40_class if row else UNKNOWN_NAME

    def scannet200_id(self, raw: str) -> int:
        """The table `id` when it is a ScanNet200 benchmark class, else 0 (ignored by the benchmark)."""
        row = self.row(raw)
        return row.scannet_id if row and row.scannet_id in _SCANNET200_SET else 0

    def category(self, raw: str) -> str:
        row = self.row(raw)
        return row.category if row else normalize_label(raw)

    def scanrefer_class(self, raw: str) -> str:
        """ScanRefer's class for the unique / multiple split: a NYU40 name from its list, else 'others'."""
        name = self.nyu40_name(raw)
        return name if name in SCANREFER_CLASSES else "others"


_SCANNET200_SET = frozenset(SCANNET200_IDS)
