"""The `hf` backend on a tiny randomly initialised LLaVA built here from configs: no download, no GPU.

The tokenizer is a word-level one assembled with the `tokenizers` library and the image processor is
CLIP's PIL one, so the whole processor is built offline and saved beside the model, as a real checkpoint is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from core.annotate.captioners.base import CaptionRequest
from core.annotate.captioners.cache import ResponseCache
from core.annotate.captioners.hf_backend import HFCaptioner
from core.annotate.captioners.registry import make_captioner

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
WORDS = [
    ":",
    "user",
    "assistant",
    "describe",
    "the",
    "object",
    "chair",
    "table",
    "red",
    "blue",
    "small",
    "near",
    "a",
]
IMAGE_SIZE, PATCH = 32, 8
TOKENS_PER_IMAGE = (IMAGE_SIZE // PATCH) ** 2  # the CLS token is dropped ("default" feature strategy)
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : "
    "{% if m['content'] is string %}{{ m['content'] }} {% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image> {% else %}{{ p['text'] }} {% endif %}"
    "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}"
)


def build_tiny_llava(folder: Path) -> int:
    """Save a ~100k-parameter LLaVA and its processor to `folder`; returns the image token id."""
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(SPECIALS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**small, image_size=IMAGE_SIZE, patch_size=PATCH),
        text_config=LlamaConfig(
            **small, vocab_size=len(vocab), num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0
        ),
        image_token_id=vocab["<image>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return vocab["<image>"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    folder = tmp_path_factory.mktemp("tiny-llava")
    return folder, build_tiny_llava(folder)


def requests(image_counts: list[int], max_tokens: int = 6) -> list[CaptionRequest]:
    rng = np.random.default_rng(1)
    return [
        CaptionRequest(
            stage="isolated_view",
            prompt="describe the object" if i % 2 else "a red chair near the table",
            images=[rng.integers(0, 255, (40 + 3 * k, 50, 3), dtype=np.uint8) for k in range(n)],
            max_tokens=max_tokens,
        )
        for i, n in enumerate(image_counts)
    ]


def test_loads_through_the_registry_on_the_cpu(tiny_model: tuple[Path, int]) -> None:
    captioner = make_captioner("hf", model_path=tiny_model[0], device="cpu")
    assert isinstance(captioner, HFCaptioner)
    assert (captioner.device, captioner.dtype) == ("cpu", torch.float32)
    assert captioner.processor.tokenizer.padding_side == "left"


def test_the_processor_gets_every_image(tiny_model: tuple[Path, int]) -> None:
    folder, image_token = tiny_model
    captioner = HFCaptioner(folder, device="cpu")
    inputs = captioner.prepare(requests([1, 2, 3]))
    image_tokens = (inputs["input_ids"] == image_token).sum(dim=1).tolist()
    assert image_tokens == [TOKENS_PER_IMAGE, 2 * TOKENS_PER_IMAGE, 3 * TOKENS_PER_IMAGE]
    assert inputs["pixel_values"].shape == (6, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert (inputs["attention_mask"][:, -1] == 1).all()  # padded on the left


def test_batched_generation_matches_one_at_a_time(tiny_model: tuple[Path, int]) -> None:
    batch = requests([1, 2, 1, 3, 2])
    texts = HFCaptioner(tiny_model[0], device="cpu", batch_size=3).caption(batch)
    assert len(texts) == 5 and all(isinstance(t, str) and t for t in texts)
    single = HFCaptioner(tiny_model[0], device="cpu", batch_size=1)
    assert texts == [single.caption([r])[0] for r in batch]


def test_cache_skips_generation_on_a_rerun(tiny_model: tuple[Path, int], tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    captioner = HFCaptioner(tiny_model[0], device="cpu", cache=cache)
    first = captioner.caption(requests([1, 2]))
    assert len(cache) == 2

    def no_generate(**_: object) -> None:
        raise AssertionError("generate called although every answer is cached")

    captioner.model.generate = no_generate
    assert captioner.caption(requests([1, 2])) == first


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_in_half_precision_on_a_gpu(tiny_model: tuple[Path, int]) -> None:
    captioner = make_captioner("hf", model_path=tiny_model[0])
    assert captioner.device == "cuda" and captioner.dtype in (torch.bfloat16, torch.float16)
    texts = captioner.caption(requests([1, 2, 1]))
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
