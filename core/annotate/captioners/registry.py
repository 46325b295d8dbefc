"""`make_captioner(name, ...)`: the one place that turns `--captioner NAME` and its options into a captioner.

Backends are imported only when chosen, so the offline default never loads httpx, torch or transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.annotate.captioners.base import Captioner
from core.annotate.errors import CaptionerError

if TYPE_CHECKING:
    from core.annotate.captioners.cache import ResponseCache

CAPTIONERS = ("grounded", "openai", "hf", "ross3d")
ROSS3D_DEFAULT = Path(__file__).resolve().parents[3] / "assets" / "ross3d"  # the shipped checkpoint


def make_captioner(
    name: str,
    *,
    api_base: str | None = None,
    model: str | None = None,
    model_path: str | Path | None = None,
    concurrency: int = 32,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    send_facts: bool = False,
    timeout: float = 120.0,
    retries: int = 4,
    batch_size: int = 8,
    device: str | None = None,
    scans: str | Path | None = None,
) -> Captioner:
    """Build the captioner `name`; a missing or wrong option is a `CaptionerError` that says which."""
    if name == "grounded":
        from core.annotate.captioners.grounded import GroundedCaptioner

        return GroundedCaptioner(seed=seed)

    cache = _cache(cache_dir)
    if name == "openai":
        missing = [flag for flag, value in (("--api-base", api_base), ("--model", model)) if not value]
        if missing:
            raise CaptionerError(f"captioner 'openai' needs {' and '.join(missing)}")
        from core.annotate.captioners.openai_backend import OpenAICaptioner

        return OpenAICaptioner(
            str(api_base),
            str(model),
            concurrency=concurrency,
            timeout=timeout,
            retries=retries,
            cache=cache,
            send_facts=send_facts,
        )

    if name == "hf":
        if not model_path:
            raise CaptionerError("captioner 'hf' needs --model-path (a local model directory)")
        path = Path(model_path)
        if not path.is_dir():
            raise CaptionerError(f"captioner 'hf': model path {path} is not a directory")
        if not (path / "config.json").is_file():
            raise CaptionerError(
                f"captioner 'hf': {path} has no config.json (not a transformers model folder)"
            )
        from core.annotate.captioners.hf_backend import HFCaptioner

        return HFCaptioner(path, batch_size=batch_size, device=device, cache=cache, seed=seed)

    if name == "ross3d":
        return _ross3d(model_path, scans, batch_size, device)

    raise CaptionerError(f"unknown captioner {name!r}; choose one of: {', '.join(CAPTIONERS)}")


def _cache(cache_dir: str | Path | None) -> ResponseCache | None:
    if cache_dir is None:
        return None
    from core.annotate.captioners.cache import ResponseCache

    return ResponseCache(cache_dir)


def _ross3d(
    checkpoint: str | Path | None, scans: str | Path | None, batch_size: int, device: str | None
) -> Captioner:
    """The project's Ross3D (default: the shipped assets/ross3d) over the scenes of `scans`."""
    path = Path(checkpoint) if checkpoint else ROSS3D_DEFAULT
    if not (path / "config.json").is_file():
        where = "no such folder" if not path.is_dir() else "no config.json (not a saved Ross3D)"
        raise CaptionerError(f"captioner 'ross3d': checkpoint {path}: {where} (give --checkpoint DIR)")
    if not scans:
        raise CaptionerError("captioner 'ross3d' needs --scans (the dataset root its scenes are read from)")
    if not Path(scans).is_dir():
        raise CaptionerError(f"captioner 'ross3d': --scans {scans} is not a folder")
    from core.annotate.captioners.ross3d_backend import Ross3DCaptioner
    from core.models.errors import ModelError

    try:
        return Ross3DCaptioner(path, scans, device=device, batch_size=batch_size)
    except ModelError as exc:
        raise CaptionerError(f"captioner 'ross3d': {exc}") from None
