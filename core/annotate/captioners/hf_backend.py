"""The `hf` captioner: a local vision-language model folder run with transformers (weights on disk).

Any architecture that `AutoModelForImageTextToText` knows (Qwen2-VL, LLaVA, Idefics3, InternVL...) works,
because prompts go through the processor's own chat template, which places each model's image tokens.
Requests are generated in batches padded on the left, so every row's new tokens start at the same column.
"""

from __future__ import annotations

import hashlib
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from core.annotate.captioners.base import CaptionRequest
from core.annotate.captioners.cache import ResponseCache, cache_key
from core.annotate.errors import CaptionerError


def pick_device() -> str:
    """The fastest device here: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str) -> torch.dtype:
    """Half precision where the hardware runs it well (bf16 if supported); float32 on the CPU."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def image_digest(image: np.ndarray) -> str:
    """A hash of an image's pixels and shape: the cache key sees the image without storing it."""
    return hashlib.sha256(str(image.shape).encode() + np.ascontiguousarray(image).tobytes()).hexdigest()


class HFCaptioner:
    """Captions with a local transformers image-text-to-text model."""

    name = "hf"

    def __init__(
        self,
        model_path: str | Path,
        *,
        batch_size: int = 8,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        cache: ResponseCache | None = None,
        seed: int = 0,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.path = Path(model_path).resolve()
        self.batch_size = max(1, batch_size)
        self.device = device or pick_device()
        self.dtype = dtype or pick_dtype(self.device)
        self.cache = cache
        self.seed = seed
        try:
            self.processor = AutoProcessor.from_pretrained(self.path)
            model = AutoModelForImageTextToText.from_pretrained(self.path, dtype=self.dtype)
        except (OSError, ValueError, KeyError) as exc:
            raise CaptionerError(
                f"captioner 'hf': cannot load a vision-language model from {self.path}: {exc}"
            ) from exc
        self.model = model.to(self.device).eval()
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token

    def prepare(self, requests: list[CaptionRequest]) -> Any:
        """Model inputs for a batch: chat template with the images, tokenised, padded left, on the device."""
        conversations = [
            [
                {
                    "role": "user",
                    "content": [{"type": "image", "image": Image.fromarray(image)} for image in r.images]
                    + [{"type": "text", "text": r.prompt}],
                }
            ]
            for r in requests
        ]
        inputs = self.processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        )
        return inputs.to(self.device, dtype=self.dtype)

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        keys = [self._key(r) for r in requests]
        texts: list[str | None] = [self.cache.get(k) if self.cache else None for k in keys]
        todo = [i for i, text in enumerate(texts) if text is None]
        # one generate call per sampling setting, in chunks of `batch_size`
        by_params = sorted(todo, key=lambda i: (requests[i].max_tokens, requests[i].temperature))
        for _, group in groupby(by_params, key=lambda i: (requests[i].max_tokens, requests[i].temperature)):
            indices = list(group)
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for i, text in zip(chunk, self._generate([requests[i] for i in chunk])):
                    texts[i] = text
                    if self.cache is not None:
                        self.cache.put(keys[i], text)
        return [str(t) for t in texts]

    def _generate(self, requests: list[CaptionRequest]) -> list[str]:
        inputs = self.prepare(requests)
        temperature = requests[0].temperature
        sampling: dict[str, Any] = {"do_sample": temperature > 0}
        if temperature > 0:
            sampling["temperature"] = temperature
            torch.manual_seed(self.seed)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=requests[0].max_tokens, **sampling)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]

    def _key(self, request: CaptionRequest) -> str:
        content: list[dict[str, Any]] = [
            {"type": "image", "sha256": image_digest(im)} for im in request.images
        ]
        content.append({"type": "text", "text": request.prompt})
        params = {"max_tokens": request.max_tokens, "temperature": request.temperature}
        return cache_key(str(self.path), [{"role": "user", "content": content}], params)
