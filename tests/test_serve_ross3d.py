"""`python -m core serve --captioner ross3d`: the project's Ross3D as an OpenAI-compatible captioner.

A tiny Ross3D is taught two Scan2Cap captions (one per object of a generated scene, from the frames the
server itself will choose), saved, and served by the real command on 127.0.0.1; the project's `openai`
captioner client (what `python -m core annotate --captioner openai --send-facts` uses) then gets each
object's caption back from the facts' key alone, and the caption of the box it sends when it sends one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from ross3d_tiny import tiny_config

from core.__main__ import main
from core.annotate.captioners.base import CaptionRequest
from core.annotate.captioners.registry import make_captioner
from core.data.datasets.ross3d_samples import SceneStore
from core.models.ross3d.modeling_ross3d import Ross3DModel
from core.models.ross3d.processor_ross3d import CAPTION_PROMPT, Ross3DSample

pytestmark = pytest.mark.usefixtures("one_thread")

SCENE = "scene0000_00"
CAPTIONS = ("a red chair .", "the big bed .")  # what the tiny model learns to say about two objects


@pytest.fixture(scope="module")
def taught(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, str], dict]:
    """A tiny Ross3D that captions two objects of SCENE differently; (folder, {object id: caption}, boxes)."""
    torch.manual_seed(0)
    model = Ross3DModel(tiny_config())
    scene = SceneStore(synth_root, model.image, None, False, False).get(SCENE)  # the server's own frames
    ids = scene.proposal_ids[:2]
    boxes = {oid: scene.proposals[scene.proposal_ids.index(oid)].tolist() for oid in ids}
    samples = [
        Ross3DSample(SCENE, "scan2cap", CAPTION_PROMPT, caption, scene.frames, box=boxes[oid])
        for oid, caption in zip(ids, CAPTIONS)
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(1, 151):  # about 20 steps: the language-model loss only (no targets given)
        model.train()
        model(samples, mask_views=False)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 5 == 0 and model.eval().answer(samples) == list(CAPTIONS):
            break
    assert model.eval().answer(samples) == list(CAPTIONS), "the tiny model did not learn its two captions"
    folder = model.save_pretrained(tmp_path_factory.mktemp("ross3d") / "model")
    return folder, dict(zip(ids, CAPTIONS)), boxes


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(taught, synth_root: Path) -> Iterator[str]:
    """`python -m core serve --captioner ross3d --checkpoint DIR --scans DIR` as a user starts it."""
    port = _free_port()
    command = [sys.executable, "-m", "core", "serve", "--captioner", "ross3d", "--checkpoint", str(taught[0])]
    command += ["--scans", str(synth_root), "--port", str(port), "--device", "cpu"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                httpx.get(f"{url}/models")
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_openai_client_gets_ross3d_captions_for_objects(server: str, taught) -> None:
    _, captions, boxes = taught
    assert httpx.get(f"{server}/models").json()["data"][0]["id"] == "ross3d"
    client = make_captioner("openai", api_base=server, model="ross3d", send_facts=True, retries=0)
    (a, caption_a), (b, caption_b) = captions.items()
    requests = [
        CaptionRequest("fusion", "Describe the chair.", facts={"key": f"{SCENE}|{a}", "label": "chair"}),
        CaptionRequest("isolated_view", "Describe it.", facts={"key": f"{SCENE}|{b}|20", "label": "bed"}),
        # the box, when the client sends one, is what the model is asked about
        CaptionRequest("fusion", "Describe.", facts={"key": f"{SCENE}|{a}", "label": "x", "box": boxes[b]}),
    ]
    assert client.caption(requests) == [caption_a, caption_b, caption_b]


def test_scene_level_requests_are_answered_as_questions_about_the_scene(server: str) -> None:
    body = {
        "model": "ross3d",
        "messages": [{"role": "user", "content": "What room is this?"}],
        "densescan_stage": "narrative",
        "densescan_facts": {"key": f"{SCENE}|narrative", "room_type": "bedroom"},
    }
    response = httpx.post(f"{server}/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["choices"][0]["message"]["content"], str)


@pytest.mark.parametrize(
    ("facts", "needle"),
    [
        (None, "densescan_facts"),  # no facts at all
        ({"label": "chair"}, "densescan_facts.key"),  # no key: no scene to look at
        ({"key": f"{SCENE}|999"}, "no object 999"),
        ({"key": "scene9999_00|1"}, "scene9999_00"),
        ({"key": f"{SCENE}|1", "box": [1, 2, 3]}, "densescan_facts.box"),
    ],
)
def test_requests_it_cannot_answer_are_a_400_that_says_why(server: str, facts, needle: str) -> None:
    body = {"model": "ross3d", "messages": [{"role": "user", "content": "Describe."}]}
    if facts is not None:
        body["densescan_facts"] = facts
    response = httpx.post(f"{server}/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]


def test_a_missing_checkpoint_or_scans_folder_is_one_line(tmp_path: Path, capsys, taught) -> None:
    assert main(["serve", "--captioner", "ross3d", "--checkpoint", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err and "no such folder" in err
    (tmp_path / "empty").mkdir()
    assert main(["serve", "--captioner", "ross3d", "--checkpoint", str(tmp_path / "empty")]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert main(["serve", "--captioner", "ross3d", "--checkpoint", str(taught[0])]) == 2
    assert "needs --scans" in capsys.readouterr().err
    assert main(["serve", "--captioner", "ross3d", "--checkpoint", str(taught[0]), "--scans", "nope/"]) == 2
    assert "--scans nope/ is not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_annotate_captions_with_ross3d_directly(tmp_path: Path, taught, synth_root: Path) -> None:
    """`python -m core annotate --captioner ross3d` (no server): the pipeline reads the scene's frames
    through Ross3D and writes records whose captions are the model's."""
    out = tmp_path / "run"
    args = ["annotate", "--scans", str(synth_root), "--out", str(out), "--scenes", SCENE]
    args += ["--captioner", "ross3d", "--model-path", str(taught[0]), "--no-progress", "--workers", "1"]
    assert main(args) == 0
    records = json.loads((out / "densescan.json").read_text())
    assert records and any(caption in json.dumps(records) for caption in taught[1].values())
