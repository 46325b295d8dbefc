"""The whole pipeline through the `openai` backend against the project's own server on 127.0.0.1.

The server runs the `grounded` captioner, so the captions must equal an in-process `grounded` run: any
loss of images, facts, order or stage on the way through HTTP shows up as a difference. The server also
fails some requests, which the backend must retry without changing the output.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from core.__main__ import main
from core.annotate.captioners.grounded import GroundedCaptioner
from core.serve.app import Faults, create_app, serve_in_thread

SCENE = "scene0000_00"


def _captions(out: Path) -> list[tuple[str, str, str, str]]:
    records = json.loads((out / "densescan.json").read_text())
    return [(r["level"], r["object_id"], r["ann_id"], r["description"]) for r in records]


def test_pipeline_over_http_matches_in_process(synth_root: Path, tmp_path: Path) -> None:
    local = tmp_path / "local"
    args = ["annotate", "--scans", str(synth_root), "--scenes", SCENE, "--no-progress", "--top-k", "3"]
    assert main([*args, "--out", str(local)]) == 0

    app = create_app(GroundedCaptioner(), require_facts=True, faults=Faults(fail_rate=0.1), test_hooks=True)
    remote = tmp_path / "remote"
    with serve_in_thread(app) as base:
        remote_args = ["--captioner", "openai", "--api-base", base, "--model", "grounded", "--send-facts"]
        assert main([*args, "--out", str(remote), *remote_args, "--concurrency", "8"]) == 0
        stats = httpx.get(base.replace("/v1", "/_test/stats")).json()
    assert stats["requests"] > 20, "the pipeline did not talk to the server"
    assert stats["max_in_flight"] > 1, "requests of a stage were not sent concurrently"

    assert _captions(remote) == _captions(local)
    doc = json.loads((remote / "scenes" / SCENE / "annotation.json").read_text())
    assert doc["captioner"] == "openai"
    # Every answer is in the response cache under --out, so a rerun after a crash asks nothing twice.
    assert len(list((remote / "cache").rglob("*.txt"))) >= stats["requests"] * 0.7
