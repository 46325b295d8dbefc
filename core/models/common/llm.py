"""The language model of Dense3D and Ross3D: a Qwen2 causal LM (tiny from a config, or any local HF path),
its tokenizer, the task tokens, LoRA, and the one rule for splicing visual tokens and finding [SEG].

- `build_llm(LLMConfig(), tokenizer_dir)` returns `(model, tokenizer)`. Default: `Qwen2ForCausalLM` built
  from a `Qwen2Config` (no download) over the shipped tokenizer (assets/tokenizer). With `path`: any local
  HF causal LM (`local_files_only`) and its own tokenizer unless `tokenizer_dir` is given. Tokens the
  tokenizer lacks (`add_tokens`, default [SEG]; and `<image>`, needed for splicing) are added, the
  embeddings grow when needed and the new rows start at the mean of the old ones.
- Fine-tuning: `lora_r == 0` trains every weight (tiny configs); `lora_r > 0` wraps the model with peft
  LoRA on the explicit `lora_targets` (auto-detection fails on Qwen2) and keeps `embed_tokens` and
  `lm_head` fully trainable (`modules_to_save`) so that the added tokens learn.
- `embed_with_prefix` replaces each sample's single `<image>` placeholder with that sample's visual tokens
  (LLaVA style: the sequence grows by N-1) and returns the embeds, attention mask, position ids, the
  spliced ids (`<image>` id at every visual position) and labels with -100 at visual and padding
  positions. Training and inference both go through it.
- [SEG] rule (REFERENCE §4): the hidden state *at the [SEG] position itself* (the position whose input
  token, and whose HF label, is [SEG]; Reason3D's rule, not LISA's "position that predicts [SEG]"),
  computed on the spliced sequence. At inference the generated ids are appended and one forward pass over
  the whole sequence gives the states (`generate_with_prefix` + `append_tokens`), so both use the same
  positions. `seg_positions(..., rule="predictor")` gives LISA's rule for weights trained that way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from core.models.common.tokenizer import (
    COORD_TOKEN,
    DEFAULT_OUT,
    EOS_TOKEN,
    GROUND_TOKEN,
    IM_END,
    IMAGE_TOKEN,
    SEG_TOKEN,
    load_tokenizer,
)
from core.models.errors import ModelError

IGNORE_INDEX = -100
SEG_RULES = ("token", "predictor")


@dataclass
class LLMConfig:
    path: str | None = None  # a local HF causal LM folder; None: Qwen2 from the fields below
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 688
    max_positions: int = 4096
    rope_theta: float = 10000.0
    tie_embeddings: bool = False
    lora_r: int = 0  # 0: full fine-tuning
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    add_tokens: tuple[str, ...] = (SEG_TOKEN,)
    dtype: str = "float32"  # weights dtype ("bfloat16" for a 7B path on GPU)
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False


@dataclass
class TokenIds:
    """Ids of the tokens the models use (None where the tokenizer lacks one)."""

    image: int
    pad: int
    eos: list[int]
    seg: int | None = None
    ground: int | None = None
    coord: int | None = None


def token_ids(tokenizer: Any) -> TokenIds:
    def get(token: str) -> int | None:
        i = tokenizer.convert_tokens_to_ids(token)
        return None if i is None or i == tokenizer.unk_token_id or i < 0 else int(i)

    image = get(IMAGE_TOKEN)
    if image is None:
        raise ModelError(None, f"tokenizer has no {IMAGE_TOKEN} token (build the LLM with build_llm)")
    eos = [i for i in (get(IM_END), tokenizer.eos_token_id, get(EOS_TOKEN)) if i is not None]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    return TokenIds(
        image, int(pad), list(dict.fromkeys(eos)), get(SEG_TOKEN), get(GROUND_TOKEN), get(COORD_TOKEN)
    )


def _dtype(name: str) -> torch.dtype:
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ModelError(None, f"LLMConfig.dtype: unknown torch dtype {name!r}")
    return value


def _load_tokenizer(config: LLMConfig, tokenizer_dir: str | Path | None):
    if tokenizer_dir is not None:
        return load_tokenizer(tokenizer_dir)
    if config.path is not None:
        from transformers import AutoTokenizer

        if not any(
            (Path(config.path) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")
        ):
            raise ModelError(config.path, "no tokenizer files: give tokenizer_dir for this LLM path")
        return AutoTokenizer.from_pretrained(config.path, local_files_only=True)
    return load_tokenizer(DEFAULT_OUT)


def _add_tokens(tokenizer: Any, config: LLMConfig) -> list[str]:
    """Add the tokens the tokenizer lacks; returns the added ones."""
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    added = []
    if IMAGE_TOKEN not in vocab:
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
        added.append(IMAGE_TOKEN)
    new = [t for t in dict.fromkeys(config.add_tokens) if t not in vocab and t != IMAGE_TOKEN]
    if new:
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in new])
        added += new
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return added


def _qwen2_from_config(config: LLMConfig, tokenizer: Any) -> nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if config.hidden % config.heads or config.heads % config.kv_heads:
        raise ModelError(
            None,
            f"LLMConfig: hidden {config.hidden} / heads {config.heads} / kv_heads "
            f"{config.kv_heads} must divide evenly",
        )
    qwen = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        intermediate_size=config.intermediate,
        max_position_embeddings=config.max_positions,
        rope_theta=config.rope_theta,
        tie_word_embeddings=config.tie_embeddings,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
    )
    qwen._attn_implementation = config.attn_implementation
    return Qwen2ForCausalLM(qwen).to(_dtype(config.dtype))


def _from_path(config: LLMConfig, load_weights: bool) -> nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(str(config.path))
    if not (path / "config.json").is_file():
        raise ModelError(path / "config.json", "missing: LLMConfig.path must be a local HF model folder")
    kwargs = {"dtype": _dtype(config.dtype), "attn_implementation": config.attn_implementation}
    if load_weights:
        return AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, **kwargs)
    hf_config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    return AutoModelForCausalLM.from_config(hf_config, **kwargs)


@torch.no_grad()
def _init_new_rows(model: nn.Module, old_len: int, new_ids: list[int]) -> None:
    """Added tokens start at the mean embedding of the tokens the model already knew (input and output)."""
    layers = [model.get_input_embeddings()]
    out = model.get_output_embeddings()
    if out is not None and out.weight is not layers[0].weight:
        layers.append(out)
    for layer in layers:
        mean = layer.weight[:old_len].float().mean(0)
        for i in new_ids:
            layer.weight[i] = mean.to(layer.weight.dtype)


def build_llm(
    config: LLMConfig | None = None, tokenizer_dir: str | Path | None = None, load_weights: bool = True
) -> tuple[nn.Module, Any]:
    """`(model, tokenizer)` for `config`; `load_weights=False` builds a local path's architecture without
    reading its weights (used when a checkpoint's own weights are loaded next)."""
    config = config or LLMConfig()
    if config.path is not None and not (Path(config.path) / "config.json").is_file():  # never a hub name
        raise ModelError(
            Path(config.path) / "config.json", "missing: LLMConfig.path must be a local HF model folder"
        )
    tokenizer = _load_tokenizer(config, tokenizer_dir)
    old_len = len(tokenizer)
    added = _add_tokens(tokenizer, config)
    if config.path is None:
        model = _qwen2_from_config(config, tokenizer)
    else:
        model = _from_path(config, load_weights)
        rows = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > rows:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        if added:
            _init_new_rows(model, old_len, [tokenizer.convert_tokens_to_ids(t) for t in added])
    ids = token_ids(tokenizer)
    model.generation_config.eos_token_id = ids.eos
    model.generation_config.pad_token_id = ids.pad
    model.generation_config.bos_token_id = None
    if config.gradient_checkpointing:
        model.activation_checkpointing_enable()
    if config.lora_r > 0:
        model = _with_lora(model, config)
    else:
        model.requires_grad_(True)
    return model, tokenizer


def _with_lora(model: nn.Module, config: LLMConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in config.lora_targets if t not in names]
    if missing or not config.lora_targets:
        raise ModelError(
            None, f"LLMConfig.lora_targets: no module named {missing or '(empty list)'} in the LLM"
        )
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        modules_to_save=["embed_tokens", "lm_head"],
        ensure_weight_tying=tied,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


# ------------------------------------------------------------------------------------ visual splicing


@dataclass
class Spliced:
    """A batch after visual splicing; every tensor is [B, T] (embeds [B, T, H]) on the model's device."""

    inputs_embeds: Tensor
    attention_mask: Tensor  # 1 on real tokens, 0 on padding
    position_ids: Tensor  # 0.. over real tokens (right for left and right padding alike)
    input_ids: Tensor  # text ids; the <image> id at visual positions; pad id on padding
    visual_mask: Tensor  # bool: positions holding visual tokens
    labels: Tensor | None  # IGNORE_INDEX at visual and padding positions (None when no labels given)

    @property
    def text_mask(self) -> Tensor:
        """bool: real text positions (what an LM loss may see)."""
        return self.attention_mask.bool() & ~self.visual_mask


def _per_sample_visual(visual_tokens: Any, batch: int) -> list[Tensor | None]:
    if visual_tokens is None:
        return [None] * batch
    if isinstance(visual_tokens, Tensor):
        if visual_tokens.dim() != 3 or visual_tokens.shape[0] != batch:
            raise ModelError(
                None, f"visual_tokens: expected [B={batch}, N, H], got {tuple(visual_tokens.shape)}"
            )
        return list(visual_tokens)
    items = list(visual_tokens)
    if len(items) != batch:
        raise ModelError(None, f"visual_tokens: {len(items)} entries for a batch of {batch}")
    return items


def embed_with_prefix(
    model: nn.Module,
    input_ids: Tensor,
    visual_tokens: Tensor | list[Tensor | None] | None,
    image_token_id: int,
    attention_mask: Tensor | None = None,
    labels: Tensor | None = None,
    pad_token_id: int = 0,
    padding_side: str = "right",
) -> Spliced:
    """Replace each sample's `<image>` placeholder by its visual tokens ([N_b, H], already at the LLM width).

    `input_ids` [B, L] may be padded either side (`attention_mask` says where); a sample has exactly one
    placeholder when it has visual tokens and none otherwise. The output is padded on `padding_side`
    ("left" for batched generation)."""
    if padding_side not in ("left", "right"):
        raise ModelError(None, f"padding_side must be 'left' or 'right', not {padding_side!r}")
    batch = input_ids.shape[0]
    embed = model.get_input_embeddings()
    device = next(embed.parameters()).device
    input_ids = input_ids.to(device)
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(device)
    text = embed(input_ids)
    visuals = _per_sample_visual(visual_tokens, batch)
    rows = []
    for b in range(batch):
        keep = mask[b].bool()
        ids, emb = input_ids[b][keep], text[b][keep]
        lab = labels[b].to(device)[keep] if labels is not None else None
        slots = (ids == image_token_id).nonzero().flatten()
        vis = visuals[b]
        if vis is None or vis.shape[0] == 0:
            if len(slots):
                raise ModelError(
                    None, f"sample {b}: {len(slots)} {IMAGE_TOKEN} placeholder(s) but no visual tokens"
                )
            rows.append((ids, emb, lab, torch.zeros_like(ids, dtype=torch.bool)))
            continue
        if len(slots) != 1:
            raise ModelError(None, f"sample {b}: expected one {IMAGE_TOKEN} placeholder, found {len(slots)}")
        if vis.dim() != 2 or vis.shape[1] != emb.shape[1]:
            raise ModelError(
                None, f"sample {b}: visual tokens {tuple(vis.shape)}, expected [N, {emb.shape[1]}]"
            )
        i, n = int(slots[0]), vis.shape[0]
        vis = vis.to(device=device, dtype=emb.dtype)
        vis_ids = torch.full((n,), image_token_id, dtype=ids.dtype, device=device)
        ids = torch.cat([ids[:i], vis_ids, ids[i + 1 :]])
        emb = torch.cat([emb[:i], vis, emb[i + 1 :]])
        if lab is not None:
            lab = torch.cat(
                [lab[:i], torch.full((n,), IGNORE_INDEX, dtype=lab.dtype, device=device), lab[i + 1 :]]
            )
        is_vis = torch.zeros(len(ids), dtype=torch.bool, device=device)
        is_vis[i : i + n] = True
        rows.append((ids, emb, lab, is_vis))
    return _pad(rows, pad_token_id, padding_side, labels is not None)


def _pad(rows: list, pad_id: int, side: str, with_labels: bool) -> Spliced:
    length = max(len(r[0]) for r in rows)

    def pad(t: Tensor, value: Any) -> Tensor:
        fill = t.new_full((length - len(t), *t.shape[1:]), value)
        return torch.cat([t, fill] if side == "right" else [fill, t])

    ids = torch.stack([pad(ids.long(), pad_id) for ids, _, _, _ in rows])
    embeds = torch.stack([pad(emb, 0) for _, emb, _, _ in rows])
    attn = torch.stack([pad(torch.ones_like(ids, dtype=torch.long), 0) for ids, _, _, _ in rows])
    vis = torch.stack([pad(v, False) for _, _, _, v in rows])
    labels = torch.stack([pad(lab.long(), IGNORE_INDEX) for _, _, lab, _ in rows]) if with_labels else None
    position_ids = (attn.cumsum(1) - 1).clamp(min=0)
    return Spliced(embeds, attn, position_ids, ids, vis, labels)


def seg_positions(ids_or_labels: Tensor, seg_id: int, rule: str = "token") -> Tensor:
    """bool [B, T]: where the [SEG] hidden state is read. `rule="token"` (default): the positions holding
    [SEG]; `"predictor"` (LISA): the positions just before, whose output predicts [SEG]. Pass spliced
    `labels` in training (only answer [SEG]s count) and the spliced ids (prompt + generated) at inference."""
    if rule not in SEG_RULES:
        raise ModelError(None, f"seg rule must be one of {SEG_RULES}, not {rule!r}")
    at = ids_or_labels == seg_id
    if rule == "token":
        return at
    out = torch.zeros_like(at)
    out[:, :-1] = at[:, 1:]
    return out


def gather_seg(hidden: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
    """Mean hidden state over each sample's [SEG] positions -> ([B, H], counts [B]); a zero vector where a
    sample has none (no [SEG] generated: the caller predicts an empty mask)."""
    weights = positions.to(hidden.dtype)
    counts = positions.sum(1)
    summed = torch.einsum("bt,bth->bh", weights, hidden)
    return summed / counts.clamp(min=1).unsqueeze(1).to(hidden.dtype), counts


def forward_spliced(model: nn.Module, spliced: Spliced, **kwargs: Any) -> Any:
    """One LLM forward pass over a `Spliced` batch (its embeddings, mask and positions); `kwargs` go to the
    model (`labels=spliced.labels`, `output_hidden_states=True`, ...)."""
    return model(
        inputs_embeds=spliced.inputs_embeds,
        attention_mask=spliced.attention_mask,
        position_ids=spliced.position_ids,
        **kwargs,
    )


@torch.no_grad()
def generate_with_prefix(
    model: nn.Module, spliced: Spliced, max_new_tokens: int = 16, **kwargs: Any
) -> Tensor:
    """Greedy (by default) generation from a left-padded `Spliced` batch; returns the new ids [B, G]
    (eos and padding included as generated)."""
    if spliced.attention_mask.shape[0] > 1 and bool((spliced.attention_mask[:, -1] == 0).any()):
        raise ModelError(None, "batched generation needs padding_side='left' in embed_with_prefix")
    kwargs.setdefault("do_sample", False)
    return model.generate(
        inputs_embeds=spliced.inputs_embeds,
        attention_mask=spliced.attention_mask,
        max_new_tokens=max_new_tokens,
        **kwargs,
    )


@contextmanager
def add_to_token_embeddings(embeddings: nn.Module, per_row: Tensor) -> Iterator[None]:
    """While open, every lookup of the token embedding table for a batch of B rows gets `per_row` [B,H]
    added (row b to every position of row b): how a vector is fed at each generated token when `generate`
    embeds the new ids itself."""
    if per_row.dim() != 2:
        raise ModelError(None, f"add_to_token_embeddings: per_row must be [B,H], got {tuple(per_row.shape)}")

    def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
        if output.shape[0] != per_row.shape[0]:
            raise ModelError(
                None, f"embedding lookup of {output.shape[0]} rows, per_row has {per_row.shape[0]}"
            )
        return output + per_row.unsqueeze(1).to(output.dtype)

    handle = embeddings.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def append_tokens(model: nn.Module, spliced: Spliced, new_ids: Tensor, pad_token_id: int) -> Spliced:
    """`spliced` (left padded) followed by generated ids [B, G] (everything after a sample's first eos is
    padding), ready for one forward pass that reads the [SEG] states with the training rule."""
    device = spliced.inputs_embeds.device
    new_ids = new_ids.to(device)
    eos = torch.tensor(model.generation_config.eos_token_id or [], device=device)
    is_eos = torch.isin(new_ids, eos) if eos.numel() else torch.zeros_like(new_ids, dtype=torch.bool)
    after = (is_eos.long().cumsum(1) - is_eos.long()) > 0  # strictly after the first eos
    new_mask = (~after).long()
    ids = torch.cat([spliced.input_ids, torch.where(after, pad_token_id, new_ids)], 1)
    embeds = torch.cat([spliced.inputs_embeds, model.get_input_embeddings()(new_ids)], 1)
    attn = torch.cat([spliced.attention_mask, new_mask], 1)
    vis = torch.cat([spliced.visual_mask, torch.zeros_like(new_ids, dtype=torch.bool)], 1)
    position_ids = (attn.cumsum(1) - 1).clamp(min=0)
    return Spliced(embeds, attn, position_ids, ids, vis, None)
