"""The shared LLM parts: the shipped tokenizer, build_llm (tokens, resizing, LoRA), visual splicing and the
[SEG] rule, and save_pretrained / from_pretrained. Tiny configs on CPU."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

from core.models.common import tokenizer as tk
from core.models.common.llm import (
    IGNORE_INDEX,
    LLMConfig,
    append_tokens,
    build_llm,
    embed_with_prefix,
    forward_spliced,
    gather_seg,
    generate_with_prefix,
    seg_positions,
    token_ids,
)
from core.models.common.pretrained import PretrainedMixin, config_from_dict, config_to_dict
from core.models.errors import ModelError

SHIPPED = tk.DEFAULT_OUT
TINY = dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, max_positions=256)
SENTENCE = "The brown wooden chair is next to the desk. It is [SEG]."


@pytest.fixture(scope="module")
def tokenizer():
    return tk.load_tokenizer(SHIPPED)


def tiny_llm(**overrides):
    torch.manual_seed(0)
    return build_llm(LLMConfig(**{**TINY, **overrides}), SHIPPED)


# ------------------------------------------------------------------------------------------- tokenizer


def test_shipped_tokenizer_loads_with_autotokenizer_and_round_trips():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(SHIPPED), local_files_only=True)
    for text in (
        SENTENCE,
        "Where can I sit down to read a book?\nThe pink armchair.",
        "naïve café, 3.2 m² ✓",
    ):
        ids = tok(text)["input_ids"]
        assert tok.decode(ids) == text
    assert 2000 <= len(tok) <= 8192
    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) < 1024 * 1024
    recipe = json.loads((SHIPPED / "recipe.json").read_text())
    assert recipe["vocab_size"] == len(tok) and recipe["seed"] == tk.DEFAULT_SEED
    # the corpus is the project's own text: its words are single tokens
    assert len(tok(" chair")["input_ids"]) == 1 and len(tok(" nightstand")["input_ids"]) <= 2


def test_special_tokens_are_single_ids(tokenizer):
    tokens = [*tk.CONTROL_TOKENS, *tk.TASK_TOKENS]
    ids = [tokenizer(t)["input_ids"] for t in tokens]
    assert all(len(i) == 1 for i in ids), dict(zip(tokens, ids))
    assert len({i[0] for i in ids}) == len(tokens)
    assert tokenizer.eos_token == tokenizer.pad_token == tk.EOS_TOKEN
    seg = tokenizer.convert_tokens_to_ids(tk.SEG_TOKEN)
    assert tokenizer("It is [SEG].")["input_ids"].count(seg) == 1
    assert tokenizer("x[SEG]y")["input_ids"].count(seg) == 1  # never split, even without spaces
    # task tokens survive skip_special_tokens (a decoded answer keeps [SEG]); control tokens do not
    text = tokenizer.decode(tokenizer("It is [SEG].<|im_end|>")["input_ids"], skip_special_tokens=True)
    assert text == "It is [SEG]."


def test_chat_template_renders_qwen_turns_and_marks_assistant_tokens(tokenizer):
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " Where is the chair?"}]},
        {"role": "assistant", "content": "It is [SEG]."},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>user\n<image> Where is the chair?<|im_end|>\n"
        "<|im_start|>assistant\nIt is [SEG].<|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    marked = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tokenizer.decode(marked) == "It is [SEG].<|im_end|>"


def test_texts_from_json_reads_language_fields_only(tmp_path):
    path = tmp_path / "a.json"
    records = [
        {
            "scene_id": "scene0000_00",
            "object_id": "3",
            "object_name": "trash_can",
            "token": ["the"],
            "description": "The bin is by the door.",
            "answers": ["two", "2"],
            "eval_type": "mt",
        }
    ]
    path.write_text(json.dumps(records))
    assert tk.texts_from_json([path]) == ["trash can", "The bin is by the door.", "two", "2"]


def test_rebuild_is_deterministic(tmp_path):
    corpus = list(tk.PROMPT_TEXT) * 2 + tk.readme_paragraphs(Path(tk.REPO_ROOT / "README.md"))[:60]
    first = tk.save_tokenizer(tk.train_tokenizer(corpus, 800), tmp_path / "a", {"seed": 1})
    second = tk.save_tokenizer(tk.train_tokenizer(corpus, 800), tmp_path / "b", {"seed": 1})
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert {"tokenizer.json", "tokenizer_config.json", "recipe.json"} <= set(names)
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    other = tk.save_tokenizer(tk.train_tokenizer(corpus[:-20], 800), tmp_path / "c")
    assert (other / "tokenizer.json").read_bytes() != (first / "tokenizer.json").read_bytes()


@pytest.mark.slow
def test_shipped_tokenizer_rebuilds_byte_for_byte(tmp_path):
    """The recipe's command reproduces assets/tokenizer exactly, as long as its inputs (the generators'
    text and the README) are those it was built from; otherwise the shipped folder is due a rebuild."""
    recipe = json.loads((SHIPPED / "recipe.json").read_text())
    readme = tk.REPO_ROOT / "README.md"
    texts = tk.build_corpus(recipe["scenes"], recipe["seed"], recipe["frames"], readme)
    if tk.corpus_hash(texts) != recipe["corpus_sha256"]:
        pytest.skip(f"the corpus changed since assets/tokenizer was built; rebuild: {recipe['rebuild']}")
    out = tk.save_tokenizer(
        tk.train_tokenizer(texts, recipe["vocab_size_requested"], recipe["min_frequency"]),
        tmp_path / "tok",
        recipe,
    )
    for path in SHIPPED.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name


# -------------------------------------------------------------------------------------------- build_llm


def test_build_llm_from_config_has_task_tokens_and_matching_vocab(tokenizer):
    model, tok = tiny_llm(add_tokens=("[SEG]", "[NEW]"))
    assert tok.convert_tokens_to_ids("[NEW]") == len(tokenizer)  # added after the shipped vocabulary
    assert model.get_input_embeddings().weight.shape == (len(tok), TINY["hidden"])
    assert model.get_output_embeddings().weight.shape[0] == len(tok)
    ids = token_ids(tok)
    assert ids.seg == tokenizer.convert_tokens_to_ids(
        "[SEG]"
    ) and ids.image == tokenizer.convert_tokens_to_ids("<image>")
    assert model.generation_config.eos_token_id == [tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id]
    assert all(p.requires_grad for p in model.parameters())  # lora_r == 0: full fine-tuning


def test_build_llm_from_local_path_adds_seg_and_resizes(tmp_path, tokenizer):
    # a "foreign" local model whose own tokenizer has no [SEG] / <image>
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer, raw.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    raw.train_from_iterator([t.replace("[SEG]", "").replace("<image>", "") for t in tk.PROMPT_TEXT], trainer)
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>").save_pretrained(
        str(tmp_path / "base")
    )
    base_len = len(AutoTokenizer.from_pretrained(str(tmp_path / "base")))
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=base_len,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        tie_word_embeddings=False,
    )
    Qwen2ForCausalLM(cfg).save_pretrained(str(tmp_path / "base"))
    old = Qwen2ForCausalLM.from_pretrained(str(tmp_path / "base")).get_input_embeddings().weight.detach()

    model, tok = build_llm(LLMConfig(path=str(tmp_path / "base"), lora_r=2))
    assert len(tok) == base_len + 2
    seg, image = tok.convert_tokens_to_ids("[SEG]"), tok.convert_tokens_to_ids("<image>")
    assert {seg, image} == {base_len, base_len + 1}
    emb = model.get_input_embeddings()
    weight = emb.modules_to_save["default"].weight if hasattr(emb, "modules_to_save") else emb.weight
    assert weight.shape == (base_len + 2, 32)
    assert torch.allclose(weight[:base_len], old)
    assert torch.allclose(weight[seg], old.mean(0), atol=1e-6)  # new rows start at the mean embedding
    assert tok("x [SEG] y")["input_ids"] == [*tok("x ")["input_ids"], seg, *tok(" y")["input_ids"]]
    with pytest.raises(ModelError, match="config.json"):
        build_llm(LLMConfig(path=str(tmp_path / "nowhere")))


def test_lora_trains_adapters_and_embeddings_only():
    model, _ = tiny_llm(lora_r=4, lora_alpha=8)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all("lora_A" in n or "lora_B" in n or "modules_to_save" in n for n in trainable)
    for module in ("q_proj", "k_proj", "v_proj", "o_proj"):
        assert sum(f".{module}.lora_A." in n for n in trainable) == TINY["layers"]
    assert not any("mlp" in n for n in trainable)
    assert any("embed_tokens.modules_to_save" in n for n in trainable)
    assert any("lm_head.modules_to_save" in n for n in trainable)
    assert any("q_proj.base_layer.weight" in n for n in frozen)
    with pytest.raises(ModelError, match="qkv"):
        tiny_llm(lora_r=4, lora_targets=("qkv",))


@pytest.mark.parametrize("lora_r", [0, 4])
def test_a_few_steps_reduce_the_lm_loss(tokenizer, lora_r):
    model, tok = tiny_llm(lora_r=lora_r, lora_alpha=16)
    batch = tok([SENTENCE], return_tensors="pt")
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for _ in range(8):
        loss = model(**batch, labels=batch["input_ids"]).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0] and losses == sorted(losses, reverse=True), losses


# ------------------------------------------------------------------------------------- splice and [SEG]


def test_visual_tokens_land_at_the_image_placeholder(tokenizer):
    model, tok = tiny_llm()
    ids = token_ids(tok)
    enc = tok(
        ["<image> Where is it? It is [SEG].", "No picture. It is [SEG] and [SEG]."],
        padding=True,
        return_tensors="pt",
    )
    visual = [torch.randn(5, TINY["hidden"], requires_grad=True), None]
    sp = embed_with_prefix(
        model,
        enc["input_ids"],
        visual,
        ids.image,
        enc["attention_mask"],
        labels=enc["input_ids"].clone(),
        pad_token_id=ids.pad,
    )
    length0 = int(enc["attention_mask"][0].sum()) + 4  # one placeholder became five tokens
    assert sp.inputs_embeds.shape == (2, max(length0, int(enc["attention_mask"][1].sum())), TINY["hidden"])
    assert torch.equal(sp.visual_mask[0].nonzero().flatten(), torch.arange(5))
    assert torch.equal(sp.inputs_embeds[0, :5], visual[0])
    assert (sp.labels[sp.visual_mask] == IGNORE_INDEX).all()
    assert (sp.labels[sp.attention_mask == 0] == IGNORE_INDEX).all()
    assert torch.equal(sp.text_mask, sp.attention_mask.bool() & ~sp.visual_mask)
    # text after the visual tokens is shifted by 4 and keeps its embeddings
    text_emb = model.get_input_embeddings()(enc["input_ids"][0])
    assert torch.equal(sp.inputs_embeds[0, 5:length0], text_emb[1 : length0 - 4])
    # [SEG] positions are those of the spliced sequence, in labels and ids alike
    seg = seg_positions(sp.labels, ids.seg)
    assert seg[0].nonzero().flatten().tolist() == [int((enc["input_ids"][0] == ids.seg).nonzero()) + 4]
    assert seg[1].sum() == 2 and torch.equal(seg, seg_positions(sp.input_ids, ids.seg))
    before = seg_positions(sp.labels, ids.seg, rule="predictor")
    assert before[0].nonzero().flatten().tolist() == [seg[0].nonzero().item() - 1]
    # the loss ignores visual positions and gradients reach the visual tokens
    out = forward_spliced(model, sp, labels=sp.labels, output_hidden_states=True)
    pooled, counts = gather_seg(out.hidden_states[-1], seg)
    assert counts.tolist() == [1, 2]
    (out.loss + pooled.sum()).backward()
    assert visual[0].grad is not None and visual[0].grad.abs().sum() > 0
    hidden = out.hidden_states[-1]
    assert torch.allclose(pooled[1], hidden[1][seg[1]].mean(0))
    assert torch.equal(gather_seg(hidden, torch.zeros_like(seg))[0], torch.zeros(2, TINY["hidden"]))


def test_bad_placeholders_are_clear_errors(tokenizer):
    model, tok = tiny_llm()
    ids = token_ids(tok)
    two = tok(["<image> and <image>"], return_tensors="pt")["input_ids"]
    with pytest.raises(ModelError, match="expected one <image>"):
        embed_with_prefix(model, two, [torch.zeros(3, TINY["hidden"])], ids.image)
    with pytest.raises(ModelError, match="no visual tokens"):
        embed_with_prefix(model, tok(["<image> hi"], return_tensors="pt")["input_ids"], None, ids.image)


def test_inference_reads_seg_states_at_the_training_positions(tokenizer):
    """Left-padded prompt + appended generated ids (inference) gives the same [SEG] hidden states as the
    right-padded full sequence (training)."""
    model, tok = tiny_llm()
    model.eval()
    ids = token_ids(tok)
    prompts = ["<image> Where is the lamp?", "<image> Find the tallest chair near the window, please."]
    answers = [" It is [SEG].<|im_end|>", " Sure, it is [SEG].<|im_end|>"]
    visual = [torch.randn(4, TINY["hidden"]), torch.randn(6, TINY["hidden"])]
    full = tok([p + a for p, a in zip(prompts, answers)], padding=True, return_tensors="pt")
    train = embed_with_prefix(
        model,
        full["input_ids"],
        visual,
        ids.image,
        full["attention_mask"],
        labels=full["input_ids"].clone(),
        pad_token_id=ids.pad,
    )
    tok.padding_side = "left"
    prompt = tok(prompts, padding=True, return_tensors="pt")
    tok.padding_side = "right"
    infer = embed_with_prefix(
        model,
        prompt["input_ids"],
        visual,
        ids.image,
        prompt["attention_mask"],
        pad_token_id=ids.pad,
        padding_side="left",
    )
    generated = tok(answers, padding=True, return_tensors="pt")["input_ids"]  # as if generated
    generated[0, -1] = tok.convert_tokens_to_ids("It")  # junk after the eos must be masked out
    infer = append_tokens(model, infer, generated, ids.pad)

    def seg_states(sp, source):
        with torch.no_grad():
            out = forward_spliced(model, sp, output_hidden_states=True)
        return gather_seg(out.hidden_states[-1], seg_positions(source, ids.seg))

    (train_states, n_train), (infer_states, n_infer) = (
        seg_states(train, train.labels),
        seg_states(infer, infer.input_ids),
    )
    assert n_train.tolist() == n_infer.tolist() == [1, 1]
    assert torch.allclose(train_states, infer_states, atol=1e-5)


def test_generation_and_the_reread_forward_agree(tokenizer):
    """`generate_with_prefix` on a left-padded batch, then `append_tokens` + one forward: the forward's
    greedy choices are the generated tokens (same positions and masks in both passes)."""
    model, tok = tiny_llm(lora_r=4)
    model.eval()
    ids = token_ids(tok)
    tok.padding_side = "left"
    prompt = tok(
        ["<image> Where is it?", "<image> Which chair is closest to the window?"],
        padding=True,
        return_tensors="pt",
    )
    tok.padding_side = "right"
    visual = [torch.randn(3, TINY["hidden"]), torch.randn(2, TINY["hidden"])]
    spliced = embed_with_prefix(
        model,
        prompt["input_ids"],
        visual,
        ids.image,
        prompt["attention_mask"],
        pad_token_id=ids.pad,
        padding_side="left",
    )
    generated = generate_with_prefix(model, spliced, max_new_tokens=5)
    full = append_tokens(model, spliced, generated, ids.pad)
    with torch.no_grad():
        logits = forward_spliced(model, full).logits
    start = spliced.inputs_embeds.shape[1] - 1
    assert torch.equal(logits[:, start : start + generated.shape[1]].argmax(-1), generated)
    with pytest.raises(ModelError, match="padding_side='left'"):
        right = embed_with_prefix(
            model,
            prompt["input_ids"].flip(1),
            visual,
            ids.image,
            prompt["attention_mask"].flip(1),
            pad_token_id=ids.pad,
        )
        generate_with_prefix(model, right, max_new_tokens=1)


# -------------------------------------------------------------------------------------- save / load


@dataclass
class TinyConfig:
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(**TINY))
    head_dims: tuple[int, ...] = (64, 8)
    clamp: tuple[tuple[float, float], ...] = ((-1.0, 1.0), (0.0, 2.0))
    note: str | None = None


class TinyModel(nn.Module, PretrainedMixin):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig, tokenizer_dir: str | Path | None = SHIPPED):
        super().__init__()
        self.config = config
        self.llm, self.tokenizer = build_llm(config.llm, tokenizer_dir)
        self.head = nn.Linear(*config.head_dims)

    @classmethod
    def _build_for_loading(cls, config, folder):
        return cls(config, tokenizer_dir=folder)

    def forward(self, input_ids):
        out = self.llm(input_ids=input_ids, output_hidden_states=True)
        return out.logits, self.head(out.hidden_states[-1])


@pytest.mark.parametrize("llm", [dict(), dict(lora_r=4, tie_embeddings=True)], ids=["full", "lora-tied"])
def test_save_then_load_gives_identical_outputs(tmp_path, llm):
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    model = TinyModel(TinyConfig(llm=LLMConfig(**{**TINY, **llm}), note="x"))
    with torch.no_grad():  # move LoRA B and the saved-module copies off their initial values
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    model.eval()
    ids = model.tokenizer([SENTENCE], return_tensors="pt")["input_ids"]
    folder = model.save_pretrained(tmp_path / "ckpt")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    loaded = TinyModel.from_pretrained(folder)
    assert loaded.config == model.config and isinstance(loaded.config.clamp[0], tuple)
    with torch.no_grad():
        for a, b in zip(model(ids), loaded(ids)):
            assert torch.equal(a, b)
    assert AutoTokenizer.from_pretrained(str(folder))(SENTENCE)["input_ids"] == ids[0].tolist()
    model.save_pretrained(folder)  # saving over a checkpoint replaces it
    assert TinyModel.load_config(folder) == model.config


def test_bad_checkpoints_raise_model_error_naming_the_file(tmp_path):
    torch.manual_seed(0)
    model = TinyModel(TinyConfig())
    folder = model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())

    with pytest.raises(ModelError, match="no such checkpoint folder"):
        TinyModel.from_pretrained(tmp_path / "absent")

    (folder / "model.safetensors").rename(tmp_path / "weights")
    with pytest.raises(ModelError, match="model.safetensors: missing") as err:
        TinyModel.from_pretrained(folder)
    assert err.value.path == folder / "model.safetensors"
    (tmp_path / "weights").rename(folder / "model.safetensors")

    wider = {**config, "head_dims": [64, 16]}
    (folder / "config.json").write_text(json.dumps(wider))
    with pytest.raises(
        ModelError, match=r"model.safetensors: config.json does not match .*head.weight"
    ) as err:
        TinyModel.from_pretrained(folder)

    deeper = {**config, "llm": {**config["llm"], "layers": 3}}
    (folder / "config.json").write_text(json.dumps(deeper))
    with pytest.raises(ModelError, match=r"missing from the file.*layers\.2"):
        TinyModel.from_pretrained(folder)

    (folder / "config.json").write_text(json.dumps({**config, "llm": {**config["llm"], "lyers": 3}}))
    with pytest.raises(ModelError, match=r"config.json: unknown config key\(s\) \['llm.lyers'\]"):
        TinyModel.from_pretrained(folder)

    (folder / "config.json").write_text(json.dumps({**config, "architecture": "Ross3D"}))
    with pytest.raises(ModelError, match="a Ross3D checkpoint"):
        TinyModel.from_pretrained(folder)

    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json: invalid JSON"):
        TinyModel.from_pretrained(folder)

    (folder / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json: missing"):
        TinyModel.from_pretrained(folder)

    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ModelError, match="model.safetensors: not a readable safetensors file"):
        TinyModel.from_pretrained(folder)

    other = tmp_path / "results"
    other.mkdir()
    (other / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(ModelError, match="not a checkpoint folder"):
        model.save_pretrained(other)
    assert (other / "metrics.jsonl").exists()


def test_config_round_trip_restores_nested_dataclasses_and_tuples():
    config = TinyConfig(llm=LLMConfig(path="/models/qwen", lora_targets=("q_proj",)), clamp=((-2.0, 2.0),))
    data = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(TinyConfig, data) == config
    assert config_from_dict(TinyConfig, {}) == TinyConfig()  # absent fields take their defaults
