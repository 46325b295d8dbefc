"""Review store benchmark: simulated annotators claiming and saving against one SQLite database.

    python bench/bench_review.py [--seconds 60] [--annotators 20] [--items 30000] [--think-ms 0] [--db URL]

Each annotator is a thread sharing one `ReviewService` (as the app's server does) and loops: claim the
next item, sometimes save a draft, then approve / edit-and-approve / reject / skip it. With the default
think time of 0 they act as fast as they can, so this measures the store under saturation. Prints
actions per second and the latency of claim and save (target: p95 under 50 ms).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from review import Edit, ReviewConfig, ReviewService  # noqa: E402

CATEGORIES = ["chair", "table", "bed", "sofa", "lamp", "cabinet", "door", "window", "pillow", "monitor"]
TARGET_P95_MS = 50.0


def write_records(folder: Path, n: int, seed: int = 0) -> Path:
    """`n` object captions in DenseScan format, spread over scenes, with a realistic status mix."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        name, other = rng.choice(CATEGORIES), rng.choice(CATEGORIES)
        status = rng.choices(["accepted", "flagged", "rejected"], weights=(6, 3, 1))[0]
        text = f"This is a {rng.choice(['brown', 'white', 'grey'])} {name}. It is next to the {other}."
        records.append(
            {
                "scene_id": f"scene{i // 50:04d}_00",
                "object_id": str(i % 50),
                "object_name": name,
                "ann_id": "0",
                "description": text,
                "token": text.lower().split(),
                "level": "object",
                "status": status,
                "confidence": round(rng.random(), 3),
                "source": "bench",
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "densescan.json").write_text(json.dumps(records))
    return folder


class Timings:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.refused = 0

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            self.samples[name].append(seconds * 1000)


def annotator(
    service: ReviewService, user: str, deadline: float, think: float, timings: Timings, seed: int
) -> None:
    rng = random.Random(seed)
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        item = service.next_item(user)
        timings.add("claim", time.perf_counter() - t0)
        if item is None:
            return
        time.sleep(think)
        roll, base, key = rng.random(), item.head_revision, uuid.uuid4().hex
        edit = Edit(item.text.description + f" Checked by {user}.")
        if roll < 0.3:
            t0 = time.perf_counter()
            service.save_draft(user, item.id, base, edit)
            timings.add("save draft", time.perf_counter() - t0)
        t0 = time.perf_counter()
        if roll < 0.5:
            result = service.approve(user, item.id, base, key, active_seconds=think)
        elif roll < 0.75:
            result = service.edit_and_approve(user, item.id, base, edit, key, active_seconds=think)
        elif roll < 0.9:
            result = service.reject(user, item.id, base, "wrong_attribute", key, active_seconds=think)
        else:
            result = service.skip(user, item.id, key, active_seconds=think)
        timings.add("save decision", time.perf_counter() - t0)
        if not result.applied:  # cannot happen on a leased item: it would mean two people held it
            timings.refused += 1


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--items", type=int, default=30000)
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause between claiming and deciding")
    parser.add_argument("--db", help="database URL (default: a new SQLite file in a temp folder)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench_review_"))
    url = args.db or f"sqlite:///{folder / 'review.db'}"
    service = ReviewService(url, ReviewConfig(double_review_rate=0.1))
    t0 = time.perf_counter()
    report = service.import_annotations(write_records(folder / "annotations", args.items))
    import_s = time.perf_counter() - t0
    users = [f"annotator{i:02d}" for i in range(args.annotators)]
    for user in users:
        service.add_user(user, "bench password", "annotator")

    timings = Timings()
    deadline = time.perf_counter() + args.seconds
    threads = [
        threading.Thread(target=annotator, args=(service, u, deadline, args.think_ms / 1000, timings, i))
        for i, u in enumerate(users)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start

    total = sum(len(v) for v in timings.samples.values())
    setup = f"{report.added} items imported in {import_s:.1f} s, {args.annotators} annotators"
    print(f"review store on {service.db.engine.dialect.name}: {setup}, think time {args.think_ms:.0f} ms")
    print(
        f"{'operation':16} {'count':>7} {'per s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for name in ("claim", "save draft", "save decision"):
        values = timings.samples.get(name, [])
        if values:
            quantiles = " ".join(f"{percentile(values, q):8.1f}" for q in (50, 95, 99))
            print(f"{name:16} {len(values):7} {len(values) / elapsed:7.1f} {quantiles} {max(values):8.1f}")
    print(
        f"{'all actions':16} {total:7} {total / elapsed:7.1f}   in {elapsed:.1f} s, {timings.refused} refused"
    )
    worst = max(
        percentile(timings.samples[n], 95) for n in ("claim", "save decision") if timings.samples.get(n)
    )
    verdict = "meets" if worst < TARGET_P95_MS else "misses"
    print(f"p95 of claim and save: {worst:.1f} ms ({verdict} the {TARGET_P95_MS:.0f} ms target)")


if __name__ == "__main__":
    main()
