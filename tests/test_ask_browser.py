"""The "Ask the scene" tab served for real and driven in headless Chromium: typing a sentence draws
Dense3D's mask in the 3D view (a trace of exactly the predicted points, in the mask colour, over the
dimmed room), lists Ross3D's candidates with their probabilities and the best frames of the top one;
picking another candidate boxes it in the same view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import serve_app
from test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Served, _browser_or_skip
from test_ask_scene import build_checkpoints

from app.access import ensure_local_user
from app.ask_tab import MASK_COLOR, MASK_POINTS
from app.context import AppContext
from core.serve.ask import SceneModels
from review import ReviewService


@pytest.fixture(scope="module")
def served(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, dict]]:
    work = tmp_path_factory.mktemp("ask-served")
    checkpoints = build_checkpoints(synth_root, work)
    service = ReviewService(f"sqlite:///{work / 'review.db'}")
    ensure_local_user(service, "local")
    models = SceneModels(synth_root, checkpoints["dense3d"], checkpoints["ross3d"], threads=1)
    ctx = AppContext(service, synth_root, None, auth=False, local_user="local", models=models)
    with serve_app(ctx, work / "export") as url:
        yield Served(url, service), {**checkpoints, "models": models}


# the drawn figure as Plotly holds it: per trace its name, marker colour, mode and point count
PLOT_JS = """(sentence) => {
  const div = document.querySelector('#ask-3d .js-plotly-plot');
  if (!div || !div.data || !div.layout || !div.layout.meta || div.layout.meta.ask !== sentence) return null;
  // positions travel as typed arrays ({dtype: "f4", bdata: base64}), lines as plain lists
  const count = (x) => (!x ? 0 : x.bdata !== undefined ? atob(x.bdata).length / 4 : x.length);
  return {
    object: div.layout.meta.object,
    traces: div.data.map((t) => [t.name, t.marker ? t.marker.color : null, t.mode, count(t.x)]),
  };
}"""


@pytest.mark.browser
def test_type_a_sentence_and_the_mask_is_drawn(served: tuple[Served, dict]) -> None:
    sync_playwright = _browser_or_skip()
    server, checkpoints = served
    sentence, scene_id = checkpoints["sentence"], checkpoints["scene"]
    models: SceneModels = checkpoints["models"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        page.goto(server.url)
        page.get_by_role("tab", name="Ask the scene").click()
        page.wait_for_selector('#ask-models .ask-model[data-model="dense3d"][data-ok="1"]', timeout=60_000)
        page.locator("#ask-scene input").click()
        page.get_by_role("option", name=scene_id, exact=True).click()
        page.locator("#ask-sentence textarea").fill(sentence)
        page.locator("#ask-go").click()
        page.wait_for_function(f"({PLOT_JS})({sentence!r}) !== null", timeout=90_000)
        drawn = page.evaluate(PLOT_JS, sentence)
        expected = int(models.segment(scene_id, sentence).mask.sum())
        assert expected > 0
        masks = [t for t in drawn["traces"] if t[0].startswith("Dense3D mask")]
        drawn_points = min(expected, MASK_POINTS)  # a huge mask is drawn evenly subsampled
        assert masks == [[f"Dense3D mask · {expected} points", MASK_COLOR, "markers", drawn_points]]
        (background,) = [t for t in drawn["traces"] if t[0] == "scene (dimmed)"]
        assert background[3] > 1000
        found = models.ground(scene_id, sentence)
        top = found.candidates[0]
        assert drawn["object"] == top.object_id
        # the candidates with their probabilities, the top one chosen; the timings; the best frames
        radios = page.locator("#ask-candidates label")
        assert radios.count() == len(found.candidates)
        assert f"{top.prob:.1%}" in radios.first.inner_text()
        assert page.locator("#ask-candidates input").first.is_checked()
        timing = page.locator("#ask-timing .ask-timing")
        assert timing.get_attribute("data-dense3d-ms") and timing.get_attribute("data-ross3d-ms")
        page.wait_for_selector("#ask-frames img", timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ask-the-scene.png"), full_page=True)

        # pick the second candidate: the same mask, the new object boxed, redrawn in the SAME plot (a live
        # plot: no new WebGL plot per figure, the user's camera kept)
        page.evaluate("document.querySelector('#ask-3d .js-plotly-plot').__kept = true")
        second = found.candidates[1]
        radios.nth(1).click()
        page.wait_for_function(
            f"((s, id) => {{ const d = ({PLOT_JS})(s); return d && d.object === id; }})"
            f"({sentence!r}, {second.object_id})",
            timeout=30_000,
        )
        drawn = page.evaluate(PLOT_JS, sentence)
        boxes = [t for t in drawn["traces"] if t[2] == "lines"]
        assert len(boxes) == 1 and f"id {second.object_id} " in boxes[0][0]
        assert [t for t in drawn["traces"] if t[0].startswith("Dense3D mask")] == masks
        plots = "[...document.querySelectorAll('#ask-3d .js-plotly-plot')].map((d) => d.__kept === true)"
        assert page.evaluate(plots) == [True]

        # a question with a situation: Ross3D answers SQA3D style
        page.get_by_text("Ask Ross3D a question").click()
        page.locator("#ask-situation textarea").fill("I am sitting on the bed.")
        page.locator("#ask-question textarea").fill("What is in front of me?")
        page.locator("#ask-answer-go").click()
        page.wait_for_selector('#ask-answer .ask-answer[data-kind="SQA3D"]', timeout=60_000)
        expected_answer = models.answer(scene_id, "What is in front of me?", "I am sitting on the bed.").text
        assert page.inner_text("#ask-answer .ask-answer-text") == (expected_answer.strip() or "(no answer)")
        # reconstructions with two sampler steps: both BEVs shown and the scores
        page.get_by_text("Reconstructions (Ross3D)").click()
        steps = page.locator("#ask-steps input[type=number]")
        steps.wait_for(state="visible", timeout=30_000)
        slider = page.locator("#ask-steps input[type=range]")
        for _ in range(3):  # the slider takes a typed value when the field loses focus
            steps.fill("2")
            steps.press("Tab")
            page.wait_for_timeout(300)
            if slider.input_value() == "2":
                break
        assert slider.input_value() == "2"
        page.locator("#ask-recon-go").click()
        page.wait_for_selector('#ask-scores tr[data-score="bev-psnr"]', timeout=60_000)
        assert " dB" in page.inner_text('#ask-scores tr[data-score="bev-psnr"]')
        assert "2 steps" in page.inner_text("#ask-scores")
        page.wait_for_selector("#ask-bev img", timeout=30_000)
        page.wait_for_selector("#ask-bev-truth img", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "ask-the-scene-reconstructions.png"), full_page=True)
        browser.close()
