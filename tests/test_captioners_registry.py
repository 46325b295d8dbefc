"""`make_captioner`: each name builds its backend, and a wrong name or missing option says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.annotate.captioners.openai_backend import OpenAICaptioner
from core.annotate.captioners.registry import CaptionerError, make_captioner


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(CaptionerError, match="unknown captioner 'gpt'.*grounded, openai, hf"):
        make_captioner("gpt")


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        ({}, "--api-base and --model"),
        ({"api_base": "http://x/v1"}, "--model"),
        ({"model": "m"}, "--api-base"),
    ],
)
def test_openai_needs_api_base_and_model(options: dict, missing: str) -> None:
    with pytest.raises(CaptionerError, match=f"'openai' needs {missing}$"):
        make_captioner("openai", **options)


def test_openai_options_reach_the_backend(tmp_path: Path) -> None:
    captioner = make_captioner(
        "openai", api_base="http://h:1/v1/", model="m", concurrency=5, cache_dir=tmp_path, send_facts=True
    )
    assert isinstance(captioner, OpenAICaptioner)
    assert captioner.url == "http://h:1/v1/chat/completions"
    assert (captioner.concurrency, captioner.send_facts, captioner.cache.root) == (5, True, tmp_path)


def test_hf_needs_an_existing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(CaptionerError, match="needs --model-path"):
        make_captioner("hf")
    with pytest.raises(CaptionerError, match="is not a directory"):
        make_captioner("hf", model_path=tmp_path / "missing")
    with pytest.raises(CaptionerError, match="no config.json"):
        make_captioner("hf", model_path=tmp_path)


def test_grounded_is_the_offline_default() -> None:
    captioner = make_captioner("grounded", seed=3)
    assert captioner.name == "grounded" and captioner.seed == 3
