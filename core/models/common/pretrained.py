"""`save_pretrained` / `from_pretrained(local_dir)` for the project's models, Hugging Face style, offline.

A checkpoint folder holds `config.json` (the model's config dataclass as JSON, plus `"architecture"`: the
class name), `model.safetensors` (the full state dict) and, when the model has a `tokenizer` attribute,
the tokenizer files beside them (so `AutoTokenizer.from_pretrained(folder)` works too). Subclasses may
write more in `_save_extra` (Ross3D's VAE). Nothing here reaches a hub: only a local folder is read.

LoRA: the weights are saved *unmerged* (base weights, `lora_A` / `lora_B` and the `modules_to_save`
copies, under peft's module names), so `from_pretrained` rebuilds the same module tree from the config
alone, training resumes exactly, and merged weights can still be had with peft's `merge_and_unload()`.
Tied weights are stored once and re-expanded on load (safetensors refuses shared tensors).

Writes are atomic: the folder is built beside the target and renamed into place; an existing target is
replaced only when it is a checkpoint folder (it has `config.json`) or empty. Loading checks the file
against the model built from the config and raises `ModelError` naming the missing file, or the first
missing / unexpected / mis-shaped keys, instead of a traceback from `load_state_dict`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

from core.atomic import atomic_dir, atomic_write_json
from core.models.errors import ModelError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
T = TypeVar("T")
M = TypeVar("M", bound="PretrainedMixin")


# ------------------------------------------------------------------------------------ config <-> JSON


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass (nested ones included) as JSON-ready data; tuples become lists, paths strings."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)


def _convert(hint: Any, value: Any, where: str, path: Path) -> Any:
    origin = typing.get_origin(hint)
    if value is None:
        return None
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise ModelError(
                path, f"{where}: expected an object for {hint.__name__}, got {type(value).__name__}"
            )
        return config_from_dict(hint, value, path, f"{where}.")
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        for option in options:  # a dataclass or tuple option wins when the value has its shape
            if dataclasses.is_dataclass(option) and isinstance(value, dict):
                return _convert(option, value, where, path)
            if typing.get_origin(option) is tuple and isinstance(value, list):
                return _convert(option, value, where, path)
        if len(options) == 1:
            return _convert(options[0], value, where, path)
        return value
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where, path) for v in value)
        if args and len(args) != len(value):
            raise ModelError(path, f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, where, path) for a, v in zip(args or [Any] * len(value), value))
    if origin is list and isinstance(value, list):
        (arg,) = typing.get_args(hint) or (Any,)
        return [_convert(arg, v, where, path) for v in value]
    if hint is Path and isinstance(value, str):
        return Path(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def config_from_dict(
    cls: type[T], data: dict[str, Any], path: Path = Path(CONFIG_NAME), where: str = ""
) -> T:
    """`cls` from `config_to_dict` output: nested dataclasses and tuples restored, absent fields defaulted;
    an unknown key is a `ModelError` naming the file and the key."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ModelError(path, f"unknown config key(s) {[f'{where}{k}' for k in unknown]} for {cls.__name__}")
    kwargs = {k: _convert(hints[k], v, f"{where}{k}", path) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ModelError(path, f"{where or cls.__name__}: {e}") from e


# ----------------------------------------------------------------------------------------- weights


def _dedupe(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors to write (shared ones once, contiguous, on CPU) and {alias: stored key} for tied weights."""
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    storages: set[int] = set()
    for key, tensor in state.items():
        tensor = tensor.detach()
        ident = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
        )
        if tensor.numel() and ident in seen:
            aliases[key] = seen[ident]
            continue
        seen[ident] = key
        storage = tensor.untyped_storage().data_ptr()
        shared = tensor.numel() and storage in storages
        storages.add(storage)
        tensor = tensor.to("cpu")
        out[key] = tensor.clone().contiguous() if shared or not tensor.is_contiguous() else tensor
    return out, aliases


def save_state(module: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    tensors, aliases = _dedupe(module.state_dict())
    save_file(tensors, str(path), metadata={"format": "pt", "aliases": json.dumps(aliases, sort_keys=True)})


def load_state(module: torch.nn.Module, path: Path) -> None:
    """Load `path` into `module` after checking every key and shape; `ModelError(path, ...)` otherwise."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ModelError(path, "missing: the checkpoint has no weights file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:  # JSONDecodeError is a ValueError
        raise ModelError(path, f"not a readable safetensors file ({e})") from e
    for alias, key in aliases.items():
        if key in state:
            state[alias] = state[key]
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es), e.g. {'; '.join(shapes[:3])}")
    if missing:
        problems.append(f"{len(missing)} key(s) missing from the file, e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) in the file, e.g. {unexpected[:3]}")
    if problems:
        raise ModelError(path, f"config.json does not match the weights: {'; '.join(problems)}")
    module.load_state_dict(state, strict=True)


# ------------------------------------------------------------------------------------- the base class


class PretrainedMixin:
    """Mix into an `nn.Module` whose `__init__` takes its config dataclass (`config_class`) and which keeps
    it as `self.config`; a `self.tokenizer` (optional) is saved beside the weights.

    Override `_build_for_loading(config, folder)` when construction needs the folder (e.g. the tokenizer
    saved in it, or `build_llm(..., load_weights=False)` to skip a large base model's weights that the
    checkpoint overwrites anyway), and `_save_extra(folder)` to write more files.
    """

    config_class: ClassVar[type]
    config: Any

    # -- hooks
    @classmethod
    def _build_for_loading(cls: type[M], config: Any, folder: Path) -> M:
        return cls(config)  # type: ignore[call-arg]

    def _save_extra(self, folder: Path) -> None:
        return None

    # -- save
    def save_pretrained(self, save_dir: str | Path) -> Path:
        """Write config.json, model.safetensors and the tokenizer into `save_dir` (atomically)."""
        target = Path(save_dir)
        if target.exists() and (
            not target.is_dir() or (any(target.iterdir()) and not (target / CONFIG_NAME).exists())
        ):
            raise ModelError(
                target, "exists and is not a checkpoint folder (no config.json): not replacing it"
            )
        with atomic_dir(target) as tmp:
            tokenizer = getattr(self, "tokenizer", None)
            if tokenizer is not None:
                from core.models.common.tokenizer import write_tokenizer_files

                write_tokenizer_files(tokenizer, tmp)
            self._save_extra(tmp)
            save_state(self, tmp / WEIGHTS_NAME)  # type: ignore[arg-type]
            meta = {"architecture": type(self).__name__, "format_version": FORMAT_VERSION}
            atomic_write_json(tmp / CONFIG_NAME, {**meta, **config_to_dict(self.config)}, indent=2)
        return target

    # -- load
    @classmethod
    def load_config(cls, local_dir: str | Path) -> Any:
        folder = Path(local_dir)
        if not folder.is_dir():
            raise ModelError(folder, "no such checkpoint folder (from_pretrained reads local folders only)")
        path = folder / CONFIG_NAME
        if not path.is_file():
            raise ModelError(path, "missing: the checkpoint has no config file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelError(path, f"invalid JSON ({e})") from e
        if not isinstance(data, dict):
            raise ModelError(path, "expected a JSON object")
        arch = data.pop("architecture", cls.__name__)
        data.pop("format_version", None)
        if arch != cls.__name__:
            raise ModelError(path, f"a {arch} checkpoint, not a {cls.__name__} one")
        return config_from_dict(cls.config_class, data, path)

    @classmethod
    def from_pretrained(cls: type[M], local_dir: str | Path, device: str | torch.device | None = None) -> M:
        """The model saved in `local_dir` (a local folder; never a hub name), in eval mode."""
        folder = Path(local_dir)
        config = cls.load_config(folder)
        weights = folder / WEIGHTS_NAME
        if not weights.is_file():
            raise ModelError(weights, "missing: the checkpoint has no weights file")
        model = cls._build_for_loading(config, folder)
        load_state(model, weights)  # type: ignore[arg-type]
        if device is not None:
            model.to(device)  # type: ignore[attr-defined]
        model.eval()  # type: ignore[attr-defined]
        return model
