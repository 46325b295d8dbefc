"""The project's byte-level BPE tokenizer, trained here on the project's own text (assets/tokenizer/).

No model hub is reachable, so there is no Qwen tokenizer to download. The default LLM (a small Qwen2 built
from a config) uses a byte-level BPE tokenizer trained with the `tokenizers` library on the text this
project itself produces: synthetic benchmark files (ScanRefer / Multi3DRefer descriptions, ScanQA and
SQA3D questions, situations and answers) from `core.synth`, DenseScan pipeline output (captions, frame
descriptions, narratives, scenario questions) from `python -m core annotate` with the offline `grounded`
captioner, the README, and a few task prompts. Byte-level means any text still encodes (unknown words
fall back to bytes), so the tokenizer is never "out of vocabulary" on real ScanNet text, only less
compact.

Special tokens (one id each, never split):
- control, `special=True` (dropped by `decode(..., skip_special_tokens=True)`): `<|endoftext|>` (eos and
  pad), `<|im_start|>`, `<|im_end|>` (Qwen chat turns), `<image>` (where visual tokens are spliced in);
- task tokens, added but `special=False` so that a decoded answer keeps them: `[SEG]` (Dense3D's mask
  token), `<ground>` (Ross3D's grounding answer), `<coord>` (Scan2Cap's box prompt).

The chat template is Qwen's (`<|im_start|>role\\n...<|im_end|>\\n`, no default system prompt) with the
assistant turns wrapped in `{% generation %}`, so `apply_chat_template(..., return_assistant_tokens_mask=
True, return_dict=True)` marks the tokens the LM loss should see.

`python -m core.models.common.tokenizer --out assets/tokenizer [--scenes N --seed S --vocab V]` rebuilds
the folder: the same inputs (scenes, seed, frames, vocabulary size, README bytes) give the same bytes; the
recipe (sources, seed, sizes, corpus hash) is written to `recipe.json` beside the tokenizer.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_dir, atomic_write_json

EOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
IMAGE_TOKEN = "<image>"
SEG_TOKEN = "[SEG]"
GROUND_TOKEN = "<ground>"
COORD_TOKEN = "<coord>"
CONTROL_TOKENS = (EOS_TOKEN, IM_START, IM_END, IMAGE_TOKEN)
TASK_TOKENS = (SEG_TOKEN, GROUND_TOKEN, COORD_TOKEN)

DEFAULT_VOCAB = 4096
DEFAULT_SCENES = 12
DEFAULT_SEED = 0
DEFAULT_FRAMES = 16
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_OUT = REPO_ROOT / "assets" / "tokenizer"

# Qwen's chat format; `content` may be a string or a list of {"type": "text"|"image", ...} parts (an image
# part renders as the <image> placeholder). Assistant text sits inside {% generation %} for the loss mask.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['content'] is string -%}{%- set text = message['content'] -%}"
    "{%- else -%}{%- set text = namespace(v='') -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{%- set text.v = text.v + '<image>' -%}"
    "{%- else -%}{%- set text.v = text.v + part['text'] -%}{%- endif -%}"
    "{%- endfor -%}{%- set text = text.v -%}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- text + '<|im_end|>' -}}{%- endgeneration -%}{{- '\n' -}}"
    "{%- else -%}{{- text + '<|im_end|>\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)

# Prompts and answers the models are trained with (Dense3D / Ross3D task phrasing), so that they are short.
PROMPT_TEXT = (
    "You are a helpful assistant that understands 3D indoor scenes.",
    "Please segment the object that this description refers to:",
    "Please segment every object that this description refers to:",
    "Which object does this description refer to?",
    "It is [SEG].",
    "Sure, it is [SEG].",
    "There is no such object in the scene.",
    "Answer the question using a single word or phrase.",
    "Describe the object at <coord> in the scene.",
    "Locate the object that the description refers to. It is <ground>.",
    "<image>\nWhat is in this room?",
)

# String fields that carry language in the benchmark files and the DenseScan pipeline output (ids, enums
# and the ScanRefer `token` lists are left out).
TEXT_KEYS = frozenset(
    {
        "description", "question", "answers", "answer", "situation", "alternative_situation",
        "object_name", "object_names", "consistency_answer", "fusion_conflicts", "flag_reasons",
        "isolated_text", "highlighted_text", "caption", "conflicts", "need", "relations",
    }
)  # fmt: skip


def _strings(value: Any, key: str | None, out: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _strings(v, k, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, key, out)
    elif isinstance(value, str) and key in TEXT_KEYS and value.strip():
        out.append(value.replace("_", " ") if key in ("object_name", "object_names") else value)


def texts_from_json(paths: Iterable[Path]) -> list[str]:
    """The language strings of JSON files (in the order given), read by field name (`TEXT_KEYS`)."""
    out: list[str] = []
    for path in paths:
        _strings(json.loads(Path(path).read_text(encoding="utf-8")), None, out)
    return out


def corpus_files(dataset_root: Path, annotate_out: Path | None = None) -> list[Path]:
    """The text-bearing files of a synthetic dataset and of an annotate run, in a fixed (sorted) order."""
    files = sorted((dataset_root / "annotations").glob("*.json"))
    if annotate_out is not None:
        files.append(annotate_out / "densescan.json")
        files += sorted((annotate_out / "scenes").glob("*/annotation.json"))
    return files


def generate_corpus(
    work_dir: Path, scenes: int = DEFAULT_SCENES, seed: int = DEFAULT_SEED, frames: int = DEFAULT_FRAMES
) -> list[str]:
    """Write `scenes` synthetic scenes under `work_dir`, run the DenseScan pipeline (offline captioner) on
    them and return their text. Deterministic for (scenes, seed, frames)."""
    from core.__main__ import main as core_main
    from core.synth.dataset import SynthConfig, generate_dataset

    data, annotated = work_dir / "synth", work_dir / "densescan"
    generate_dataset(
        data, scenes, seed=seed, config=SynthConfig(num_frames=frames, sensor=False), progress=False
    )
    argv = ["annotate", "--scans", str(data), "--out", str(annotated), "--seed", str(seed)]
    argv += ["--captioner", "grounded", "--scene-timeout", "0", "--no-progress"]
    with contextlib.redirect_stdout(io.StringIO()):  # the pipeline's summary table is not wanted here
        status = core_main(argv)
    if status != 0:
        raise RuntimeError(f"{annotated}: `python -m core {' '.join(argv)}` failed ({status} scene(s))")
    return texts_from_json(corpus_files(data, annotated))


def readme_paragraphs(path: Path) -> list[str]:
    """The README as paragraphs (blank-line separated), so BPE sees prose rather than one huge line."""
    text = path.read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def train_tokenizer(texts: Sequence[str], vocab_size: int = DEFAULT_VOCAB, min_frequency: int = 2):
    """A byte-level BPE `PreTrainedTokenizerFast` trained on `texts` with the project's special tokens and
    chat template. Deterministic: the same texts and sizes give the same vocabulary and merges."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in CONTROL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(texts), trainer=trainer, length=len(texts))
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in TASK_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token=None,
        bos_token=None,
        model_max_length=4096,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def write_tokenizer_files(tokenizer, folder: Path) -> None:
    """`tokenizer.save_pretrained(folder)`; a transformers-5 fast tokenizer is recorded under the class
    alias `PreTrainedTokenizerFast`, which transformers 4 reads too."""
    tokenizer.save_pretrained(str(folder))
    config_path = Path(folder) / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        atomic_write_json(config_path, config, indent=2)


def save_tokenizer(tokenizer, out: Path, recipe: dict[str, Any] | None = None) -> Path:
    """Save the tokenizer folder (and `recipe.json`) atomically: built beside `out`, then renamed over it."""
    out = Path(out)
    with atomic_dir(out) as tmp:
        write_tokenizer_files(tokenizer, tmp)
        if recipe is not None:
            atomic_write_json(tmp / "recipe.json", recipe, indent=1)
    return out


def build_corpus(
    scenes: int = DEFAULT_SCENES,
    seed: int = DEFAULT_SEED,
    frames: int = DEFAULT_FRAMES,
    readme: Path | None = REPO_ROOT / "README.md",
) -> list[str]:
    """The training texts in order: task prompts, generated benchmark and pipeline text, README paragraphs."""
    with tempfile.TemporaryDirectory(prefix="tokenizer-corpus-") as work:
        generated = generate_corpus(Path(work), scenes, seed, frames)
    return list(PROMPT_TEXT) + generated + (readme_paragraphs(readme) if readme is not None else [])


def corpus_hash(texts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


def build(
    out: Path = DEFAULT_OUT,
    scenes: int = DEFAULT_SCENES,
    seed: int = DEFAULT_SEED,
    frames: int = DEFAULT_FRAMES,
    vocab_size: int = DEFAULT_VOCAB,
    readme: Path | None = REPO_ROOT / "README.md",
    min_frequency: int = 2,
):
    """Generate the corpus, train, and save the tokenizer folder with its recipe; returns the tokenizer."""
    texts = build_corpus(scenes, seed, frames, readme)
    readme_sha = hashlib.sha256(readme.read_bytes()).hexdigest() if readme is not None else None
    tokenizer = train_tokenizer(texts, vocab_size, min_frequency)
    corpus_sha = corpus_hash(texts)
    recipe = {
        "trainer": "tokenizers BpeTrainer, byte-level, NFC, GPT-2 pre-tokenizer regex",
        "min_frequency": min_frequency,
        "vocab_size_requested": vocab_size,
        "vocab_size": len(tokenizer),
        "sources": {
            "synthetic_benchmarks": f"core.synth.dataset.generate_dataset(scenes={scenes}, seed={seed}, "
            f"SynthConfig(num_frames={frames}, sensor=False)): annotations/*.json",
            "densescan_pipeline": f"python -m core annotate --captioner grounded --seed {seed}: "
            "densescan.json and scenes/*/annotation.json",
            "readme": "README.md paragraphs" if readme is not None else None,
            "prompts": "core.models.common.tokenizer.PROMPT_TEXT",
        },
        "text_fields": sorted(TEXT_KEYS),
        "scenes": scenes,
        "seed": seed,
        "frames": frames,
        "num_texts": len(texts),
        "readme_sha256": readme_sha,
        "corpus_sha256": corpus_sha,
        "special_tokens": {"control": list(CONTROL_TOKENS), "task": list(TASK_TOKENS)},
        "rebuild": f"python -m core.models.common.tokenizer --out assets/tokenizer --scenes {scenes} "
        f"--seed {seed} --frames {frames} --vocab {vocab_size} --min-frequency {min_frequency}",
    }
    save_tokenizer(tokenizer, out, recipe)
    return tokenizer


def load_tokenizer(path: str | Path = DEFAULT_OUT):
    """The tokenizer of a local folder (the shipped one by default); a missing folder is a ModelError."""
    from transformers import AutoTokenizer

    from core.models.errors import ModelError

    path = Path(path)
    if not (path / "tokenizer_config.json").is_file():
        raise ModelError(path, "no tokenizer_config.json: not a tokenizer folder")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.models.common.tokenizer",
        description="Rebuild the project's byte-level BPE tokenizer from generated scenes, the DenseScan "
        "pipeline's captions and the README (deterministic for the same arguments and README).",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default assets/tokenizer)"
    )
    parser.add_argument(
        "--scenes", type=int, default=DEFAULT_SCENES, help=f"scenes (default {DEFAULT_SCENES})"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"data seed (default {DEFAULT_SEED})")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames per scene (default 16)")
    parser.add_argument(
        "--vocab", type=int, default=DEFAULT_VOCAB, help=f"vocabulary (default {DEFAULT_VOCAB})"
    )
    parser.add_argument(
        "--min-frequency",
        type=int,
        default=2,
        help="merge only pairs seen this often (default 2; the corpus runs out of such pairs near 3k tokens, "
        "1 reaches about 4.4k with merges seen once)",
    )
    parser.add_argument("--no-readme", action="store_true", help="leave README.md out of the corpus")
    args = parser.parse_args(argv)
    if args.scenes < 1 or args.frames < 1 or args.vocab < 512 or args.min_frequency < 1:
        parser.error("--scenes, --frames and --min-frequency must be >= 1 and --vocab >= 512")
    tokenizer = build(
        args.out,
        args.scenes,
        args.seed,
        args.frames,
        args.vocab,
        None if args.no_readme else REPO_ROOT / "README.md",
    )
    size = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"{args.out}: {len(tokenizer)} tokens, {size / 1024:.0f} KiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
